"""Progress on stderr: a tqdm bar on a terminal; in a log file or a pipe, plain lines (never a carriage return).

Every loop that reports progress goes through :func:`bar`, every progress message through :func:`write`;
``enabled=False`` (the commands' ``--quiet``) silences both.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Iterable, Iterator

LINE_EVERY_S = 60.0  # off a terminal: a line at most this often while a loop runs


def bar(
    iterable: Iterable | None = None,
    *,
    desc: str,
    unit: str = "it",
    total: int | None = None,
    enabled: bool = True,
    done_line: bool = True,
    stream: IO[str] | None = None,
) -> "Progress":
    """Wrap ``iterable`` (or count ``update()`` calls) with progress named ``desc``.

    ``done_line``: off a terminal, one line when the loop ends (``False`` when the caller logs its own line,
    such as the training loop's line per epoch).
    """
    return Progress(iterable, desc, unit, total, enabled, done_line, stream or sys.stderr)


def write(text: str, enabled: bool = True, stream: IO[str] | None = None) -> None:
    """One line of progress on stderr, above a running bar on a terminal."""
    if not enabled:
        return
    stream = stream or sys.stderr
    if _is_terminal(stream):
        from tqdm import tqdm

        tqdm.write(text, file=stream)
    else:
        print(text, file=stream, flush=True)


class Progress:
    """Iterate over it or call ``update``; ``close`` (or the end of the iteration, or ``with``) finishes it."""

    def __init__(self, iterable, desc: str, unit: str, total, enabled: bool, done_line: bool, stream: IO[str]):
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.desc, self.unit, self.total = iterable, desc, unit, total
        self.enabled, self.done_line, self.stream = enabled, done_line, stream
        self.count, self.postfix, self.closed = 0, "", False
        self.start = self.last_line = time.perf_counter()
        self._tqdm = None
        if enabled and _is_terminal(stream):
            from tqdm import tqdm

            self._tqdm = tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True, file=stream)

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.count += n
        if self._tqdm is not None:
            self._tqdm.update(n)
        elif self.enabled and time.perf_counter() - self.last_line >= LINE_EVERY_S:
            self._line("...")

    def set_postfix(self, **values) -> None:
        """Figures shown beside the count (on the bar, or at the end of the plain lines)."""
        self.postfix = "  ".join(f"{k} {v}" for k, v in values.items())
        if self._tqdm is not None:
            self._tqdm.set_postfix(values, refresh=False)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._tqdm is not None:
            self._tqdm.close()
        elif self.enabled and self.done_line:
            self._line("done")

    def _line(self, state: str) -> None:
        now = time.perf_counter()
        self.last_line = now
        count = f"{self.count}/{self.total}" if self.total is not None else str(self.count)
        rate = self.count / (now - self.start) if now > self.start else 0.0
        text = f"{self.desc}: {count} {self.unit} in {now - self.start:.1f} s ({rate:.1f} {self.unit}/s) {state}"
        print(text + (f"  {self.postfix}" if self.postfix else ""), file=self.stream, flush=True)


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
