"""Our steps on the QONNX graph, before FINN's conversion: the integer inputs of the two accelerators.

- early-net: the pixel quantizer (uint8, scale 1) is the identity on uint8 pixels: remove it and
  declare the input UINT8, so no 255-level thresholding sits at the input.
- later-net: its input is the early-net's integer output; a ``Mul`` by that output's scale makes the
  float collage of the QONNX model, and streamlining absorbs it into the first thresholds.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_shapes import InferShapes

from vidconv_edge.hw.config import HwBuildConfig
from vidconv_edge.hw.partio import StreamFormat


def _scalar(model: ModelWrapper, name: str) -> float | None:
    value = model.get_initializer(name)
    return float(value) if value is not None and np.asarray(value).size == 1 else None


def is_pixel_quant(model: ModelWrapper, node) -> bool:
    """A Quant node that is the identity on uint8 values: scale 1, zero point 0, 8 bits, unsigned, not narrow."""
    if node.op_type != "Quant":
        return False
    attrs = {a.name: a.i for a in node.attribute}
    scale, zero, bits = (_scalar(model, n) for n in node.input[1:4])
    return (scale, zero, bits) == (1.0, 0.0, 8.0) and attrs.get("signed", 1) == 0 and attrs.get("narrow", 0) == 0


def step_uint8_input(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Remove the pixel quantizer at the graph input (if any) and declare the input UINT8."""
    inp = model.graph.input[0].name
    consumers = model.find_consumers(inp) or []
    if len(consumers) == 1 and is_pixel_quant(model, consumers[0]):
        quant = consumers[0]
        for node in model.find_consumers(quant.output[0]) or []:
            for i, name in enumerate(node.input):
                if name == quant.output[0]:
                    node.input[i] = inp
        model.graph.node.remove(quant)
        model.set_tensor_datatype(inp, DataType["UINT8"])
        cfg.io.input = StreamFormat(datatype="UINT8", scale=1.0, what="pixels 0..255")
    return model


def quant_output_format(model: ModelWrapper) -> tuple[float, str]:
    """(scale, FINN datatype) of the Quant node producing the graph output (the early-net's feature map)."""
    out = model.graph.output[0].name
    node = model.find_producer(out)
    if node is None or node.op_type != "Quant":
        raise ValueError(f"the graph output '{out}' is not produced by a Quant node")
    attrs = {a.name: a.i for a in node.attribute}
    scale, zero, bits = (_scalar(model, n) for n in node.input[1:4])
    if scale is None or zero != 0.0 or bits is None:
        raise ValueError("the output quantizer is not per-tensor with zero point 0")
    signed = attrs.get("signed", 1)
    return scale, f"{'INT' if signed else 'UINT'}{int(bits)}"


def step_integer_input(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """later-net: integer input (``cfg.input_datatype``) times ``cfg.input_scale`` = the QONNX float collage."""
    if cfg.input_scale is None:
        return model
    inp = model.graph.input[0].name
    scaled = model.make_new_valueinfo_name()
    model.graph.value_info.append(helper.make_tensor_value_info(scaled, TensorProto.FLOAT, model.get_tensor_shape(inp)))
    for node in model.find_consumers(inp) or []:
        for i, name in enumerate(node.input):
            if name == inp:
                node.input[i] = scaled
    scale = model.make_new_valueinfo_name()
    model.set_initializer(scale, np.asarray(cfg.input_scale, dtype=np.float32))
    model.graph.node.insert(0, helper.make_node("Mul", [inp, scale], [scaled], name="IntegerInputScale"))
    model.set_tensor_datatype(inp, DataType[cfg.input_datatype])
    cfg.io.input = StreamFormat(datatype=cfg.input_datatype, scale=cfg.input_scale, what="early-net features")
    return model.transform(InferShapes())


def step_qonnx_to_finn_float64(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """FINN's ``step_qonnx_to_finn`` (QONNX cleanup, Quant -> MultiThreshold) on the graph cast to float64,
    thresholds kept in float64: streamlining then derives the integer thresholds in float64 (``hw.precision``)."""
    from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN
    from finn.transformation.qonnx.quant_act_to_multithreshold import default_filter_function_generator
    from qonnx.util.cleanup import cleanup_model

    from vidconv_edge.hw.precision import InFloat64, cast_float_tensors, thresholds_in_float64

    model = cleanup_model(ModelWrapper(cast_float_tensors(model.model, TensorProto.DOUBLE)))
    convert = ConvertQONNXtoFINN(
        filter_function=default_filter_function_generator(max_multithreshold_bit_width=cfg.max_multithreshold_bit_width)
    )
    with thresholds_in_float64():
        return model.transform(InFloat64(convert))
