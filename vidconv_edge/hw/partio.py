"""A part's I/O as the FPGA flow records it, typed: one description shared by ``hw`` and ``stream``.

The build steps fill a :class:`PartIO` (``HwBuildConfig.io``); it goes to ``report.json`` as each part's ``io``
(:meth:`PartIO.to_json`, with a version) and the deploy manifest's streams are :class:`StreamFormat` too. The
readers (the deploy bundle, the finn-sim and pynq stream backends) parse them back with ``from_json``: a wrong
version, a malformed or a missing field is a :class:`UserError` naming the field. No FINN, no torch: the board
side imports this.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidconv_edge.errors import UserError

VERSION = 1  # of the ``io`` entries in report.json


def _fail(where: str, name: str, what: str) -> UserError:
    return UserError(f"{where}: field '{name}' {what}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _ints(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def _string(value: Any) -> bool:
    return isinstance(value, str)


# StreamFormat field -> (check, what it must be)
_STREAM_FIELDS = {
    "shape": (_ints, "a list of integers"), "layout": (_string, "a string"), "datatype": (_string, "a string"),
    "scale": (_number, "a number"), "zero_point": (_number, "a number"), "folded_shape": (_ints, "a list of integers"),
    "packed_shape": (_ints, "a list of integers"), "what": (_string, "a string"),
}  # fmt: skip


@dataclass
class StreamFormat:
    """One accelerator stream: integers of a FINN datatype (``INT4``, ``UINT8``, ...) in ``layout``, real value
    = ``scale * (integer - zero_point)``; the driver packs ``folded_shape`` (..., fold, SIMD) into
    ``packed_shape`` bytes. None: not recorded (yet) by the build."""

    shape: list[int] | None = None
    layout: str | None = None
    datatype: str | None = None
    scale: float | None = None
    zero_point: float | None = None
    folded_shape: list[int] | None = None
    packed_shape: list[int] | None = None
    what: str | None = None

    def to_json(self, complete: bool = False) -> dict:
        """The recorded fields; ``complete``: every field, None as null (the deploy manifest's form)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if complete or v is not None}

    def updated(self, other: StreamFormat) -> StreamFormat:
        """This stream with the fields ``other`` records."""
        return dataclasses.replace(self, **{k: v for k, v in dataclasses.asdict(other).items() if v is not None})

    @classmethod
    def from_json(cls, d: Any, where: str, name: str) -> StreamFormat:
        """Parse the stream ``name`` of ``where``; a UserError naming the field if it is malformed."""
        if not isinstance(d, dict):
            raise _fail(where, name, f"must be an object, got {type(d).__name__}")
        for key, (check, what) in _STREAM_FIELDS.items():
            if d.get(key) is not None and not check(d[key]):
                raise _fail(where, f"{name}.{key}", f"must be {what}, got {d[key]!r}")
        return cls(**{k: d.get(k) for k in _STREAM_FIELDS})


@dataclass
class PartIO:
    """What the build steps record about one accelerator (``HwBuildConfig.io``; a part's ``io`` in report.json).

    ``input``/``output``: its streams (one-stream accelerator); ``inputs``/``outputs``: a merged design's, one per
    pipeline in graph order. The rest are the steps' own records: ``verification`` (python execution vs the
    QONNX model), ``memory_styles`` (the chosen memory placement), ``binary_weights_widened`` (layer names),
    ``pipelines`` (merged design: part -> input/output index and layers).
    """

    input: StreamFormat = field(default_factory=StreamFormat)
    output: StreamFormat = field(default_factory=StreamFormat)
    inputs: list[StreamFormat] | None = None
    outputs: list[StreamFormat] | None = None
    verification: dict | None = None
    memory_styles: dict | None = None
    binary_weights_widened: list[str] | None = None
    pipelines: dict | None = None

    def to_json(self) -> dict:
        """The recorded fields, with the version; an unrecorded stream or record is left out."""
        out: dict = {"version": VERSION}
        for key in ("input", "output"):
            stream = getattr(self, key).to_json()
            if stream:
                out[key] = stream
        for key in ("inputs", "outputs"):
            if getattr(self, key) is not None:
                out[key] = [s.to_json() for s in getattr(self, key)]
        for key in ("verification", "memory_styles", "binary_weights_widened", "pipelines"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_json(cls, d: Any, where: str, name: str = "io") -> PartIO:
        """Parse ``d`` (the ``name`` field of ``where``); a wrong version or a malformed field: UserError naming it."""
        if not isinstance(d, dict):
            raise _fail(where, name, f"must be an object, got {type(d).__name__}")
        if d.get("version", 1) != VERSION:  # builds from before the field: the version 1 format without it
            raise _fail(where, f"{name}.version", f"is {d['version']!r}, this vidconv-edge reads version {VERSION}")
        io = cls()
        for key in ("input", "output"):
            if key in d:
                setattr(io, key, StreamFormat.from_json(d[key], where, f"{name}.{key}"))
        for key in ("inputs", "outputs"):
            if key in d:
                if not isinstance(d[key], list):
                    raise _fail(where, f"{name}.{key}", "must be a list of streams")
                setattr(io, key, [StreamFormat.from_json(s, where, f"{name}.{key}[{i}]") for i, s in enumerate(d[key])])
        for key, kind in (("verification", dict), ("memory_styles", dict), ("binary_weights_widened", list),
                          ("pipelines", dict)):  # fmt: skip
            if key in d:
                if not isinstance(d[key], kind):
                    raise _fail(where, f"{name}.{key}", f"must be a{'n object' if kind is dict else ' list'}")
                setattr(io, key, d[key])
        return io

    def need(self, path: str, where: str, name: str = "io") -> Any:
        """The recorded value of ``path`` (e.g. ``"output.scale"``); UserError naming the field if it is missing."""
        stream, _, key = path.partition(".")
        value = getattr(getattr(self, stream), key)
        if value is None:
            raise _fail(where, f"{name}.{path}", "is missing")
        return value


@dataclass
class PartResult:
    """A part's entry in report.json, as far as the readers use it."""

    io: PartIO
    verified: bool = False
    estimated_fps: float | None = None
    input_index: int = 0  # merged design: the part's input / output stream of the one accelerator
    output_index: int = 0


@dataclass
class BuildReport:
    """``report.json`` of a build-fpga folder, as far as the readers use it: the model and each part's result."""

    model: str | None
    parts: dict[str, PartResult]

    @classmethod
    def from_json(cls, d: Any, where: str = "report.json") -> BuildReport:
        """Parse a report; a malformed or missing field: UserError naming it."""
        if not isinstance(d, dict):
            raise UserError(f"{where}: not a build report (a JSON object)")
        if not isinstance(d.get("parts"), dict):
            raise _fail(where, "parts", "is missing" if "parts" not in d else "must be an object")
        parts = {}
        for name, p in d["parts"].items():
            field_name = f"parts.{name}"
            if not isinstance(p, dict):
                raise _fail(where, field_name, "must be an object")
            if "io" not in p:
                raise _fail(where, f"{field_name}.io", "is missing")
            for key, kind in (("verified", bool), ("input_index", int), ("output_index", int)):
                if p.get(key) is not None and not isinstance(p[key], kind):
                    raise _fail(where, f"{field_name}.{key}", f"must be {kind.__name__}, got {p[key]!r}")
            fps = p.get("estimated_fps")
            if fps is not None and not _number(fps):
                raise _fail(where, f"{field_name}.estimated_fps", f"must be a number, got {fps!r}")
            parts[name] = PartResult(
                PartIO.from_json(p["io"], where, f"{field_name}.io"), bool(p.get("verified", False)),
                fps, int(p.get("input_index") or 0), int(p.get("output_index") or 0),
            )  # fmt: skip
        return cls(d.get("model"), parts)


def read_report(path: str | os.PathLike) -> BuildReport:
    """Read and parse ``report.json``; UserError if it is unreadable or malformed."""
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the build report {p}: {e}") from e
    return BuildReport.from_json(d, str(p))
