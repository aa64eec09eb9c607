"""Float ONNX export: static shapes, onnxsim, the plain-2D check and metadata inside the file."""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from vidconv_edge import __version__
from vidconv_edge.checkpoint import model_metadata
from vidconv_edge.errors import UserError
from vidconv_edge.export.checks import check_plain_2d
from vidconv_edge.export.parts import part_module
from vidconv_edge.io import atomic_path

METADATA_KEY = "vidconv_edge"
OPSET = 17


@dataclass
class GraphSummary:
    path: str
    part: str
    op_counts: dict[str, int]
    params: int
    file_bytes: int
    inputs: dict[str, list[int]]
    outputs: dict[str, list[int]]


def summarize(path: str | os.PathLike, part: str = "full") -> GraphSummary:
    m = onnx.load(str(path))
    g = m.graph
    inits = {t.name for t in g.initializer}
    shape = lambda vi: [d.dim_value for d in vi.type.tensor_type.shape.dim]  # noqa: E731
    return GraphSummary(
        path=str(path),
        part=part,
        op_counts=dict(Counter(n.op_type for n in g.node).most_common()),
        params=int(sum(np.prod(t.dims) for t in g.initializer)),
        file_bytes=Path(path).stat().st_size,
        inputs={vi.name: shape(vi) for vi in g.input if vi.name not in inits},
        outputs={vi.name: shape(vi) for vi in g.output},
    )


def attach_metadata(model_proto: onnx.ModelProto, meta: dict) -> None:
    del model_proto.metadata_props[:]
    entry = model_proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)


def read_metadata(path: str | os.PathLike) -> dict:
    """The vidconv-edge metadata of an exported ONNX file; UserError if absent or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"ONNX file not found: {path}")
    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise UserError(f"cannot read ONNX file {path}: {type(e).__name__}") from e
    for prop in m.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    raise UserError(f"{path} has no vidconv-edge metadata: export it with `vidconv-edge export`")


def export_metadata(
    model: torch.nn.Module, part: str, class_names: list[str] | None, recipe: dict | None = None, **extra
) -> dict:
    """The checkpoint metadata of ``model`` plus the part; ``recipe``: the training recipe of the checkpoint
    exported, if any (evaluating the file then samples its clips as evaluating the checkpoint does)."""
    meta = model_metadata(model, class_names)
    meta.update(part=part, exporter_version=__version__, **extra)
    if recipe is not None:
        meta["recipe"] = recipe
    return meta


def _simplify(model_proto: onnx.ModelProto) -> onnx.ModelProto:
    import onnxsim

    simplified, ok = onnxsim.simplify(model_proto)
    return simplified if ok else model_proto


def export_onnx(
    model: torch.nn.Module,
    path: str | os.PathLike,
    part: str = "full",
    class_names: list[str] | None = None,
    simplify: bool = True,
    recipe: dict | None = None,
) -> GraphSummary:
    """Export ``part`` of ``model`` (eval mode, batch 1) to a plain-2D float ONNX file at ``path``."""
    was_training = model.training
    module, example, in_names, out_names = part_module(model, part)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(
                module, (example,), str(tmp), dynamo=False, opset_version=OPSET,
                input_names=in_names, output_names=out_names, do_constant_folding=True,
            )  # fmt: skip
        proto = onnx.load(str(tmp))
        if simplify:
            proto = _simplify(proto)
        onnx.checker.check_model(proto)
        check_plain_2d(proto)
        attach_metadata(proto, export_metadata(model, part, class_names, recipe))
        onnx.save(proto, str(tmp))
    model.train(was_training)
    return summarize(path, part)


def run_onnx(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """Run a single-input ONNX file with ONNX Runtime on CPU; returns the first output."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]
