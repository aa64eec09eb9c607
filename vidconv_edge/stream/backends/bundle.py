"""What the FPGA backends need to know about a build: the model, its classes, and each accelerator's streams.

Two sources, one :class:`FpgaBundle`:

- :func:`load_build`: a ``vidconv-edge build-fpga`` output folder (``report.json``, ``qonnx/*.onnx``, the
  HW-layer graphs under ``<part>/intermediate_models``), for ``finn-sim`` on the build machine;
  the parts are ``early`` and ``later``, or the one ``clip`` part of a whole-clip model (SEVNet);
- :func:`load_manifest`: the deploy bundle's ``manifest.json`` (format ``vidconv-edge-deploy``, documented in
  ``vidconv_edge/hw/deploy.py``), for ``pynq`` on the board (no torch, no FINN). Read here: ``frames``,
  ``size``, ``layout`` (or the same in ``input_spec``), ``class_names``, ``model``, ``missing`` and per part
  ``runs_on`` (``fabric`` | ``arm``), ``input``/``output`` (``shape``, ``datatype``, ``scale``, ``zero_point``,
  ``folded_shape``), ``bitfile`` + ``driver_settings`` (fabric) or ``onnx`` (its QONNX model, ARM);
  paths relative to the manifest's folder; ``folded_shape`` null: SIMD = the channel count.

Streams are NHWC integers of a FINN datatype; ``value = integer * scale``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from vidconv_edge.errors import UserError
from vidconv_edge.hw.deploy import CLIP, part_label
from vidconv_edge.hw.partio import StreamFormat, read_report
from vidconv_edge.spec import InputSpec, recipe_frame_rate
from vidconv_edge.stream.backends.packing import parse_datatype

log = logging.getLogger("vidconv_edge.stream")

PARTS = ("early", "later")
PIXEL_MEAN = (0.0, 0.0, 0.0)
PIXEL_STD = (1 / 255, 1 / 255, 1 / 255)  # normalize() then yields the raw pixel values 0..255
VERIFY_GRAPH = "*_step_verify_hw_python.onnx"


@dataclass
class StreamIO:
    """One accelerator stream: NHWC integers of ``datatype``, real value = integer * ``scale``."""

    shape: tuple[int, ...]
    datatype: str
    scale: float
    folded_shape: tuple[int, ...]

    @classmethod
    def from_json(cls, d: dict, where: str, name: str) -> "StreamIO":
        """The stream ``name`` of ``where``, a ``hw.partio.StreamFormat``: shape and datatype required."""
        fmt = StreamFormat.from_json(d, where, name)
        for key in ("shape", "datatype"):
            if getattr(fmt, key) is None:
                raise UserError(f"{where}: field '{name}.{key}' is missing")
        shape = tuple(fmt.shape)
        folded = fmt.folded_shape or (*shape[:-1], 1, shape[-1])  # default: SIMD = all channels
        parse_datatype(fmt.datatype)  # ValueError for anything but INTn / UINTn
        if (fmt.zero_point or 0.0) != 0.0:
            raise ValueError(f"zero_point {fmt.zero_point} (FINN streams have zero point 0)")
        return cls(shape, fmt.datatype, float(1.0 if fmt.scale is None else fmt.scale), tuple(folded))


@dataclass
class PartSpec:
    """One accelerator: its input and output streams, and where its executable form lives."""

    name: str
    input: StreamIO
    output: StreamIO
    graph: Path | None = None  # the verified HW-layer graph (finn-sim)
    runs_on: str = "fabric"  # deploy bundle (pynq): "fabric", or "arm" for a later-net run by qonnx on the CPU
    bitfile: Path | None = None  # fabric
    driver_settings: Path | None = None  # fabric: finn-plus-driver settings.json
    onnx: Path | None = None  # arm: the part's QONNX model
    input_index: int = 0  # fabric: the part's input / output stream of its accelerator (merged: 0 early, 1 later)
    output_index: int = 0


@dataclass
class FpgaBundle:
    folder: Path
    model_name: str
    class_names: list[str]
    frames: int
    size: int
    layout: tuple[int, int]
    parts: dict[str, PartSpec] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # deploy bundle: files not built yet, and why
    frame_rate: float | None = None  # of the clips the model learnt (stream paces faster sources to it)

    @property
    def input_spec(self) -> InputSpec:
        """The accelerator takes raw pixels (normalisation is folded into its first layer)."""
        return InputSpec(self.frames, self.size, PIXEL_MEAN, PIXEL_STD, self.layout)


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the {what} {path}: {e}") from e


def load_manifest(path: str | os.PathLike) -> FpgaBundle:
    """The deploy bundle: ``manifest.json`` itself, its folder, or a build folder holding ``deploy/manifest.json``."""
    p = Path(path)
    for candidate in (p, p / "manifest.json", p / "deploy" / "manifest.json"):
        if candidate.is_file() and candidate.name == "manifest.json":
            p = candidate
            break
    else:
        raise UserError(
            f"no deploy bundle at {path}: expected manifest.json there or in its deploy/ folder "
            "(written by `vidconv-edge build-fpga`; copy DIR/deploy to the board)"
        )
    m = _read_json(p, "deploy manifest")
    spec = m.get("input_spec", {})
    try:
        frames = int(m.get("frames", m.get("L", spec.get("frames"))))
        size = int(m.get("size", spec.get("size")))
        layout = tuple(int(v) for v in m.get("layout", spec.get("layout")))
        parts = {}
        for name in (CLIP,) if CLIP in m["parts"] else PARTS:
            d = m["parts"][name]
            path_of = {k: p.parent / d[k] if d.get(k) else None for k in ("bitfile", "driver_settings", "onnx")}
            streams = [StreamIO.from_json(d[k], str(p), f"parts.{name}.{k}") for k in ("input", "output")]
            parts[name] = PartSpec(
                name, *streams,
                runs_on=str(d.get("runs_on", "fabric")), input_index=int(d.get("input_index") or 0),
                output_index=int(d.get("output_index") or 0), **path_of,
            )  # fmt: skip
        missing = [f"{x['file']} ({x.get('why', '?')})" for x in m.get("missing") or []]
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{p} is not a complete deploy manifest (missing or bad {e})") from e
    classes = [str(c) for c in m.get("class_names") or []]
    rate = float(m["frame_rate"]) if m.get("frame_rate") else None
    return FpgaBundle(p.parent, str(m.get("model", "?")), classes, frames, size, layout, parts, missing, rate)  # type: ignore[arg-type]


def _graph_streams(graph: Path, folded_from: Path) -> tuple[StreamIO, StreamIO]:
    """Input/output shapes and datatypes of a HW-layer graph; the folded shapes of its latest (folded) version."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    g, f = ModelWrapper(str(graph)), ModelWrapper(str(folded_from))
    inp, out = g.graph.input[0].name, g.graph.output[0].name
    fin = tuple(getCustomOp(f.graph.node[0]).get_folded_input_shape())
    fout = tuple(getCustomOp(f.graph.node[-1]).get_folded_output_shape())
    return (
        StreamIO(tuple(g.get_tensor_shape(inp)), g.get_tensor_datatype(inp).name, 1.0, fin),
        StreamIO(tuple(g.get_tensor_shape(out)), g.get_tensor_datatype(out).name, 1.0, fout),
    )


def load_build(path: str | os.PathLike) -> FpgaBundle:
    """A build-fpga output folder with both parts built at least to the python verification step."""
    from vidconv_edge.export.onnx import read_metadata
    from vidconv_edge.hw.finn_env import prepare_finn

    folder = Path(path) if path is not None else None
    if folder is None or not (folder / "report.json").is_file():
        got = "no model argument" if folder is None else f"'{folder}'"
        raise UserError(
            f"backend finn-sim needs a build-fpga output folder (report.json + the HW graphs of the early and "
            f"later parts); got {got}. Build one with `vidconv-edge build-fpga --out DIR` and pass DIR"
        )
    report = read_report(folder / "report.json")
    names = (CLIP,) if CLIP in report.parts else PARTS
    graphs = {}
    for name in names:
        found = sorted((folder / name / "intermediate_models").glob("[0-9]*_step_*.onnx"))
        if name not in report.parts or not any(g.match(VERIFY_GRAPH) for g in found):
            raise UserError(
                f"{folder}: the {part_label(name)} was not built up to the python verification of its HW graph "
                "(build with --part both, and --until at or after verify_hw_python)"
            )
        graphs[name] = found
    meta = read_metadata(folder / "qonnx" / f"{names[0]}.onnx")
    spec = meta["input_spec"]
    prepare_finn()
    import finn.custom_op.fpgadataflow  # noqa: F401  (registers FINN's HW ops with qonnx)

    parts = {}
    for name, found in graphs.items():
        part = report.parts[name]
        if not part.verified:
            log.warning("%s: the %s HW graph was NOT verified bit-exact by the build", folder, part_label(name))
        verified = next(g for g in found if g.match(VERIFY_GRAPH))
        sin, sout = _graph_streams(verified, found[-1])
        where, field = str(folder / "report.json"), f"parts.{name}.io"
        sin.scale, sout.scale = (float(part.io.need(f"{k}.scale", where, field)) for k in ("input", "output"))
        parts[name] = PartSpec(name, sin, sout, graph=verified)
    return FpgaBundle(
        folder, str(report.model or meta["model"]), [str(c) for c in meta["class_names"]],
        int(spec["frames"]), int(spec["size"]), tuple(spec.get("layout") or (1, 1)), parts,
        frame_rate=recipe_frame_rate(meta.get("recipe")),
    )  # fmt: skip
