"""Bounded timing statistics: a live stream runs for days, so no list grows with it."""

from __future__ import annotations

import time
from collections import deque
from contextlib import contextmanager
from typing import Iterator

import numpy as np

WINDOW = 4096  # percentiles over the most recent calls


class LatencyStats:
    """Count and total of every call (ms), percentiles over the last :data:`WINDOW` calls."""

    def __init__(self, window: int = WINDOW):
        self.recent: deque[float] = deque(maxlen=window)
        self.count, self.total_ms = 0, 0.0

    def add(self, ms: float) -> None:
        self.recent.append(ms)
        self.count += 1
        self.total_ms += ms

    @contextmanager
    def time(self) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add((time.perf_counter() - t0) * 1e3)

    @property
    def mean_ms(self) -> float | None:
        """Mean over every call (not only the recent window)."""
        return self.total_ms / self.count if self.count else None

    def percentiles(self) -> tuple[float, float] | tuple[None, None]:
        """(p50, p95) over the last :data:`WINDOW` calls."""
        if not self.recent:
            return None, None
        p50, p95 = np.percentile(np.fromiter(self.recent, float), [50, 95])
        return float(p50), float(p95)


def merged(stats: list[LatencyStats]) -> LatencyStats:
    """One :class:`LatencyStats` over several (counts and totals added, every one's recent values pooled)."""
    out = LatencyStats(window=sum(s.recent.maxlen for s in stats) or WINDOW)
    for s in stats:
        out.count += s.count
        out.total_ms += s.total_ms
        out.recent.extend(s.recent)
    return out


def host_cost_per_frame(stages: dict[str, LatencyStats], frames: int) -> dict[str, float | None]:
    """Mean host-side milliseconds per input frame of each stage (its calls' total / frames)."""
    return {name: round(s.total_ms / frames, 4) if frames else None for name, s in stages.items()}
