"""QDQ export for ONNX Runtime int8 on CPU, and its check.

- A Brevitas model: its conv -> BN pairs merged (integer weights unchanged), Brevitas QCDQ export
  (QuantizeLinear/DequantizeLinear with the model's own scales), initializers taken out of the graph
  inputs so ORT constant-folds, then the exact rewrites of ``export.qdq_ort`` (uint8 activations and weights,
  the tile conv's output quantized, Flatten before DQ) so ORT fuses every DQ -> Conv/Gemm -> Q into
  QLinearConv/QGemm. Same numbers as Brevitas, as written and in ORT's int8 kernels (within one output
  step): the Brevitas layers' biases are int32 on the accumulator grid, as ORT quantizes them.
- A float model (the full ``vic_tiny``, ``sevnet_g8``, ...): the float ONNX export, then ORT
  ``quantize_static`` (QDQ, per-channel symmetric int8 weights, uint8 activations) calibrated on ``calib``,
  its weights then stored as uint8 (``UnsignedWeights``, exact): every Conv/MatMul/Gemm is int8;
  LayerNorm/GELU stay float.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import onnx
import torch

from vidconv_edge.errors import UserError
from vidconv_edge.export.checks import check_plain_2d
from vidconv_edge.export.onnx import GraphSummary, attach_metadata, export_metadata, export_onnx, read_metadata, summarize
from vidconv_edge.export.parts import part_module
from vidconv_edge.io import atomic_path
from vidconv_edge.quant.layers import merged_batchnorm
from vidconv_edge.quant.model import is_quant_model, quant_metadata

FORMAT = "qdq"
OPSET = 17
INT8_OPS = ("Conv", "MatMul", "Gemm")


def _drop_initializer_inputs(proto: onnx.ModelProto) -> None:
    inits = {t.name for t in proto.graph.initializer}
    keep = [vi for vi in proto.graph.input if vi.name not in inits]
    del proto.graph.input[:]
    proto.graph.input.extend(keep)


def _export_brevitas_qdq(qmodel: torch.nn.Module, tmp: Path, part: str) -> onnx.ModelProto:
    from brevitas.export import export_onnx_qcdq

    from vidconv_edge.export.qonnx import bias_scales_cached

    merged = merged_batchnorm(qmodel)
    module, example, in_names, out_names = part_module(merged, part)
    with warnings.catch_warnings(), torch.no_grad(), bias_scales_cached(merged):
        warnings.simplefilter("ignore")
        export_onnx_qcdq(
            module, args=example, export_path=str(tmp), dynamo=False, opset_version=OPSET,
            input_names=in_names, output_names=out_names,
        )  # fmt: skip
    from vidconv_edge.export.qdq_ort import ort_int8_friendly

    proto = onnx.load(str(tmp))
    _drop_initializer_inputs(proto)
    return ort_int8_friendly(proto)


class _Calibration:
    """ORT ``CalibrationDataReader`` over arrays for the single model input."""

    def __init__(self, name: str, arrays: Iterable[np.ndarray]):
        self.name = name
        self.items = iter([{name: np.ascontiguousarray(a[i : i + 1], dtype=np.float32)} for a in arrays for i in range(len(a))])

    def get_next(self):
        return next(self.items, None)


def _quantize_float(model: torch.nn.Module, tmp: Path, part: str, calib: Iterable[np.ndarray], class_names) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if calib is None:
        raise UserError("QDQ export of a float model needs calibration inputs (a few clips of the data)")
    with tempfile.TemporaryDirectory(dir=tmp.parent) as d:
        fp32, pre = Path(d) / "fp32.onnx", Path(d) / "pre.onnx"
        export_onnx(model, fp32, part=part, class_names=class_names)
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        name = onnx.load(str(pre)).graph.input[0].name
        quantize_static(
            str(pre), str(tmp), _Calibration(name, calib), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(INT8_OPS), per_channel=True, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
        )  # fmt: skip
    from qonnx.core.modelwrapper import ModelWrapper

    from vidconv_edge.export.qdq_ort import UnsignedWeights

    return ModelWrapper(onnx.load(str(tmp))).transform(UnsignedWeights(), cleanup=False).model


def export_qdq(
    model: torch.nn.Module,
    path: str | os.PathLike,
    part: str = "full",
    calib: Iterable[np.ndarray] | None = None,
    class_names: list[str] | None = None,
    recipe: dict | None = None,
) -> GraphSummary:
    """Export ``part`` of a Brevitas model (its own scales) or a float model (ORT ``quantize_static`` on
    ``calib``: arrays of that part's inputs, normalised as the model expects) to an int8 QDQ ONNX file."""
    quantized = is_quant_model(model)
    with atomic_path(path) as tmp:
        if quantized:
            proto = _export_brevitas_qdq(model.eval(), tmp, part)
            extra = dict(quant=quant_metadata(model), input_is_uint8=True, source="brevitas")
        else:
            proto = _quantize_float(model.eval(), tmp, part, calib, class_names)
            extra = dict(input_is_uint8=False, source="onnxruntime.quantize_static")
        onnx.checker.check_model(proto)
        check_plain_2d(proto)
        attach_metadata(proto, export_metadata(model, part, class_names, recipe, format=FORMAT, **extra))
        onnx.save(proto, str(tmp))
    return summarize(path, part)


def read_qdq_metadata(path: str | os.PathLike) -> dict:
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a QDQ export (format '{meta.get('format', 'onnx')}')")
    return meta


def ort_session(
    path: str | os.PathLike, threads: int = 1, optimized_path: str | os.PathLike | None = None, optimize: bool = True
):
    """A CPU session; ``optimize=False`` runs the QDQ graph as written (float math, the reference semantics)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if optimized_path is not None:
        so.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_ort(path: str | os.PathLike, x: np.ndarray, optimize: bool = True) -> np.ndarray:
    """Run an ONNX file (batch 1) on each item of ``x`` with ORT on CPU; first output, stacked.

    With ``optimize`` ORT fuses DQ -> op -> Q into int8 kernels (QLinearConv, ...), which quantize a float bias
    to int32 (exact for a Brevitas export: its biases are int32 already) but requantize with their own fixed-point
    rounding: a few output steps from the graph as written (README "8-bit", benchmarks/qdq_bound.py).
    """
    sess = ort_session(path, optimize=optimize)
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + 1].astype(np.float32)})[0] for i in range(len(x))])


def int8_kernel_report(path: str | os.PathLike) -> dict:
    """Which ops ORT runs after its graph optimisations: int8 kernels vs float Conv/MatMul left over."""
    from collections import Counter

    with tempfile.TemporaryDirectory() as d:
        opt = Path(d) / "opt.onnx"
        ort_session(path, optimized_path=opt)
        ops = Counter(n.op_type for n in onnx.load(str(opt)).graph.node)
    int8 = {k: v for k, v in ops.items() if k.startswith("QLinear") or k.endswith("Integer")}
    float_mm = {k: v for k, v in ops.items() if k in ("Conv", "FusedConv", "MatMul", "Gemm", "FusedMatMul")}
    return {"ops": dict(ops), "int8": int8, "float_conv_matmul": float_mm}
