"""QONNX export of a Brevitas model (for FINN), and its check against the Brevitas model.

``export_qonnx(qmodel, path, part)``: Brevitas ``export_qonnx`` (TorchScript exporter, static batch 1),
the int32 bias Quant nodes folded into their float values (:class:`FoldBiasQuant`), qonnx ``cleanup_model``
(shape/datatype inference, constant folding, unique names), the plain-2D check,
vidconv-edge metadata (``format: qonnx``, bit widths, ``input_is_uint8``, and ``input_quant`` /
``output_quant``: the integer format of the part's input and output, see :func:`part_io_quant`).
For FINN use the ``early`` and ``later`` parts: the ``full`` part has a 5D clip input, which FINN's
layout inference does not take.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import torch

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from vidconv_edge.errors import UserError
from vidconv_edge.export.checks import check_plain_2d
from vidconv_edge.export.onnx import GraphSummary, attach_metadata, export_metadata, read_metadata, summarize
from vidconv_edge.export.parts import part_module
from vidconv_edge.io import atomic_path
from vidconv_edge.quant.model import is_quant_model, quant_metadata

FORMAT = "qonnx"
QUANT_OPS = ("Quant", "BipolarQuant", "QuantizeLinear", "DequantizeLinear")  # kept by constant folding, as cleanup


def require_quant_model(model: torch.nn.Module, what: str) -> None:
    if not is_quant_model(model):
        raise UserError(
            f"{what} needs a quantized model, got the float '{getattr(model, 'name', type(model).__name__)}': "
            "quantize it first with `vidconv-edge quantize`"
        )


class FoldBiasQuant(Transformation):
    """Every ``Quant`` of a constant bias (Conv/Gemm input 2: the layers' int32 biases) -> its float value, an
    exact constant fold: FINN absorbs float biases into thresholds (and its bias extraction does not take a
    Quant with a scalar zero point)."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from qonnx.core.datatype import DataType
        from qonnx.custom_op.general.quant import quant
        from qonnx.util.basic import get_by_name

        for node in [n for n in model.graph.node if n.op_type == "Quant"]:
            consumers = model.find_consumers(node.output[0])
            params = [model.get_initializer(i) for i in node.input]
            if not consumers or any(p is None for p in params):
                continue
            if not all(c.op_type in ("Conv", "Gemm") and list(c.input).index(node.output[0]) == 2 for c in consumers):
                continue
            attr = {a: get_by_name(node.attribute, a).i for a in ("signed", "narrow")}
            mode = get_by_name(node.attribute, "rounding_mode")
            folded = quant(*params, attr["signed"], attr["narrow"], mode.s.decode() if mode else "ROUND")
            model.set_tensor_datatype(node.output[0], DataType["FLOAT32"])  # a float bias: no integer annotation
            model.set_initializer(node.output[0], folded.astype(np.float32))
            model.graph.node.remove(node)
            return model, True
        return model, False


class FoldConstantsInOnePass(Transformation):
    """qonnx's ``FoldConstants`` (same node test, same executor), every foldable node in one pass over the sorted
    graph and one shape inference at the end. qonnx's folds one node per pass, each followed by shape inference
    on the whole graph: ~0.3 s per node, and SEVNet's FPGA form (row masks) exports ~130 constant nodes."""

    def __init__(self, exclude_op_types: tuple[str, ...] = QUANT_OPS):
        super().__init__()
        self.exclude_op_types = exclude_op_types

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        import qonnx.core.onnx_exec as oxe
        from qonnx.transformation.infer_shapes import InferShapes

        model = model.transform(InferShapes())  # the executor takes each output's shape from the graph
        opset = model.model.opset_import[0].version
        context = model.make_empty_exec_context()
        folded = []
        for node in model.graph.node:
            constant = all(model.get_initializer(i) is not None for i in node.input)
            shape_of_known = node.op_type == "Shape" and model.get_tensor_shape(node.input[0]) is not None
            if not (constant or shape_of_known) or node.op_type in self.exclude_op_types:
                continue
            for i in node.input:  # as qonnx: make sure every constant input has its ValueInfo
                model.get_tensor_shape(i, fix_missing_init_shape=True)
            oxe.execute_node(node, context, model.graph, opset_version=opset)
            model.set_initializer(node.output[0], context[node.output[0]])
            folded.append(node)
        for node in folded:
            model.graph.node.remove(node)
        if folded:
            model = model.transform(InferShapes())
        return model, False


@contextmanager
def bias_scales_cached(qmodel: torch.nn.Module):
    """Brevitas' QONNX exporter reads each int32 bias's scale (input scale x weight scale) from a cache filled
    by an inference pass: one pass of the whole model (every layer of any part) on a black clip, caching on
    (switched off again afterwards)."""
    from brevitas.proxy.parameter_quant import BiasQuantProxyFromInjectorBase

    proxies = [m for m in qmodel.modules() if isinstance(m, BiasQuantProxyFromInjectorBase)]
    for proxy in proxies:
        proxy.cache_inference_quant_bias = True
    try:
        spec = qmodel.input_spec
        qmodel(torch.zeros(1, spec.frames, 3, spec.size, spec.size))
        yield
    finally:
        for proxy in proxies:
            proxy.cache_inference_quant_bias = False


def _brevitas_export(exporter, qmodel: torch.nn.Module, path: Path, part: str) -> None:
    module, example, in_names, out_names = part_module(qmodel.eval(), part)
    with warnings.catch_warnings(), torch.no_grad(), bias_scales_cached(qmodel):
        warnings.simplefilter("ignore")
        exporter(module, args=example, export_path=str(path), dynamo=False, input_names=in_names, output_names=out_names)


def export_qonnx(
    qmodel: torch.nn.Module,
    path: str | os.PathLike,
    part: str = "full",
    class_names: list[str] | None = None,
    recipe: dict | None = None,
) -> GraphSummary:
    """Export ``part`` (full | early | later) of a Brevitas model to a cleaned-up QONNX file at ``path``."""
    from brevitas.export import export_qonnx as brevitas_export_qonnx
    from qonnx.util.cleanup import cleanup_model

    require_quant_model(qmodel, "QONNX export")
    with atomic_path(path) as tmp:
        _brevitas_export(brevitas_export_qonnx, qmodel, tmp, part)
        model = ModelWrapper(str(tmp)).transform(FoldBiasQuant(), cleanup=False)
        model = model.transform(FoldConstantsInOnePass())
        proto = cleanup_model(model).model
        check_plain_2d(proto)
        meta = export_metadata(
            qmodel, part, class_names, recipe, format=FORMAT, quant=quant_metadata(qmodel), input_is_uint8=True,
            **part_io_quant(qmodel, part),
        )
        attach_metadata(proto, meta)
        onnx.save(proto, str(tmp))
    return summarize(path, part)


def quant_format(quant: torch.nn.Module) -> dict:
    """Integer format of an activation quantizer: ``value = scale * (integer - zero_point)``."""
    proxy = quant.act_quant
    bits, signed = int(proxy.bit_width()), bool(proxy.is_signed)
    return {
        "scale": float(proxy.scale().detach()), "zero_point": float(proxy.zero_point().detach()),
        "bit_width": bits, "signed": signed, "narrow": bool(proxy.is_narrow_range),
        "datatype": f"{'INT' if signed else 'UINT'}{bits}",
    }


def part_io_quant(qmodel: torch.nn.Module, part: str) -> dict:
    """``input_quant`` / ``output_quant`` of ``part``: pixels, the early-net's output quantizer (the later-net's
    input: feed it the early part's integers), the logits' quantizer."""
    pixels = quant_format(qmodel.input_quant)
    logits = quant_format(qmodel.head.out_quant if hasattr(qmodel, "head") else qmodel.out_quant)
    if part in ("full", "fpga"):
        return {"input_quant": pixels, "output_quant": logits}
    features = quant_format(qmodel.early_quant)
    if part == "early":
        return {"input_quant": pixels, "output_quant": features}
    return {"input_quant": features, "output_quant": logits}


def read_qonnx_metadata(path: str | os.PathLike) -> dict:
    """The metadata of a QONNX file written by :func:`export_qonnx`; UserError for anything else."""
    meta = read_metadata(path)
    if meta.get("format") != FORMAT or "quant" not in meta:
        raise UserError(f"{path} is not a QONNX export of a quantized model (format '{meta.get('format', 'onnx')}')")
    return meta


def run_qonnx(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """Execute a QONNX file with qonnx's executor (the reference FINN checks against); first output."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    model = ModelWrapper(str(path))
    inp, out = model.graph.input[0].name, model.graph.output[0].name
    return np.concatenate([execute_onnx(model, {inp: x[i : i + 1]})[out] for i in range(len(x))])
