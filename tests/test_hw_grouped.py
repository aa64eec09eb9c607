"""hw.steps_grouped: an interleaved-group conv MVAU becomes depthwise VVAUs, bit-exact, storing only its groups."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.basic import qonnx_make_model

DOMAIN = "finn.custom_op.fpgadataflow"


def _interleaved_matrix(grouped: np.ndarray) -> np.ndarray:
    """The (9C, C) MVAU matrix (rows ky, kx, c) of ``grouped`` (C, g, 3, 3) as ``quant.sevnet_fpga`` exports it."""
    from vidconv_edge.quant.sevnet_fpga import interleaving

    c, g = grouped.shape[:2]
    groups = c // g
    dense = np.zeros((c, c, 3, 3), dtype=np.float32)
    for k in range(groups):
        dense[k * g : (k + 1) * g, k * g : (k + 1) * g] = grouped[k * g : (k + 1) * g]
    order = interleaving(c, groups).numpy()
    dense = dense[order][:, order]
    return dense.transpose(2, 3, 1, 0).reshape(9 * c, c)


def _conv_graph(weights: np.ndarray, size: int, stride: int, thresholds: np.ndarray | None) -> ModelWrapper:
    """FMPadding -> ConvolutionInputGenerator -> MVAU (3x3, pad 1) as FINN's conversion leaves a conv."""
    c = weights.shape[1]
    out = (size - 1) // stride + 1
    idt, odt = DataType["UINT4"], DataType["UINT4"] if thresholds is not None else DataType["INT32"]
    vi = helper.make_tensor_value_info
    nodes = [
        helper.make_node("FMPadding", ["x"], ["p"], domain=DOMAIN, backend="fpgadataflow", ImgDim=[size, size],
                         Padding=[1, 1, 1, 1], NumChannels=c, SIMD=1, inputDataType=idt.name),
        helper.make_node("ConvolutionInputGenerator", ["p"], ["w"], domain=DOMAIN, backend="fpgadataflow",
                         ConvKernelDim=[3, 3], IFMChannels=c, IFMDim=[size + 2, size + 2], OFMDim=[out, out], SIMD=1,
                         Stride=[stride, stride], Dilation=[1, 1], inputDataType=idt.name, outputDataType=idt.name),
        helper.make_node("MVAU", ["w", "W"] + (["T"] if thresholds is not None else []), ["y"], domain=DOMAIN,
                         backend="fpgadataflow", PE=1, SIMD=1, MW=9 * c, MH=c, inputDataType=idt.name,
                         weightDataType="INT8", outputDataType=odt.name, ActVal=0,
                         noActivation=int(thresholds is None), numInputVectors=[1, out, out]),
    ]  # fmt: skip
    graph = helper.make_graph(nodes, "conv", [vi("x", TensorProto.FLOAT, [1, size, size, c])],
                              [vi("y", TensorProto.FLOAT, [1, out, out, c])])  # fmt: skip
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_tensor_datatype("x", idt)
    model.set_initializer("W", weights)
    model.set_tensor_datatype("W", DataType["INT8"])
    if thresholds is not None:
        model.set_initializer("T", thresholds)
        model.set_tensor_datatype("T", DataType["INT32"])
    model.set_tensor_datatype("y", odt)
    from qonnx.transformation.infer_shapes import InferShapes

    return model.transform(InferShapes())


def _run(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    from qonnx.core.onnx_exec import execute_onnx

    return execute_onnx(model, {"x": x})["y"]


@pytest.mark.parametrize(("g", "stride", "activation"), [(4, 1, True), (8, 1, True), (4, 2, True), (8, 2, False)])
def test_grouped_mvau_becomes_depthwise_vvaus_bit_exact(g, stride, activation):
    from vidconv_edge.hw.steps_grouped import LowerGroupedMVAU

    rng = np.random.default_rng(g * 10 + stride)
    c, size = 32, 6
    grouped = rng.integers(-128, 128, (c, g, 3, 3)).astype(np.float32)
    grouped[grouped == 0] = 1
    weights = _interleaved_matrix(grouped)
    thresholds = np.sort(rng.integers(-3000, 3000, (c, 15)), axis=1).astype(np.float32) if activation else None
    model = _conv_graph(weights, size, stride, thresholds)
    x = rng.integers(0, 16, (1, size, size, c)).astype(np.float32)
    expected = _run(model, x)
    # the reference: torch's grouped conv on the interleaved channels
    from vidconv_edge.quant.sevnet_fpga import interleaving

    order = interleaving(c, c // g)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)[:, torch.argsort(order)]
    acc = torch.nn.functional.conv2d(xt.double(), torch.from_numpy(grouped).double(), stride=stride, padding=1,
                                     groups=c // g)[:, order]  # fmt: skip
    acc = acc.permute(0, 2, 3, 1).numpy()
    want = (acc[..., None] >= thresholds[None, None, None]).sum(-1) if activation else acc
    assert np.array_equal(expected, want)

    lowered, modified = LowerGroupedMVAU().apply(model)
    assert modified
    ops = [n.op_type for n in lowered.graph.node]
    assert "MVAU" not in ops and ops.count("VVAU") == g and ops.count("ConvolutionInputGenerator") == g
    assert ops[:3] == ["Reshape", "FMPadding", "DuplicateStreams"] and ops[-1] == "StreamingConcat"
    stored = sum(lowered.get_initializer(n.input[1]).size for n in lowered.graph.node if n.op_type == "VVAU")
    assert stored == grouped.size == weights.size // (c // g)  # the grouped conv's own weights, no zero blocks
    assert np.array_equal(_run(lowered, x), expected)


def test_dense_and_pointwise_mvaus_are_left_alone():
    from vidconv_edge.hw.steps_grouped import LowerGroupedMVAU, interleaved_groups

    rng = np.random.default_rng(0)
    dense = rng.integers(1, 100, (9 * 8, 8)).astype(np.float32)
    assert interleaved_groups(dense, (3, 3), 8) == 1
    model = _conv_graph(dense, 4, 1, None)
    _, modified = LowerGroupedMVAU().apply(model)
    assert not modified
    # one non-zero weight across two groups makes a would-be grouped matrix dense
    grouped = rng.integers(1, 100, (8, 4, 3, 3)).astype(np.float32)
    weights = _interleaved_matrix(grouped)
    assert interleaved_groups(weights, (3, 3), 8) == 2
    weights[0, 1] = 5  # input 0 (group 0) -> output 1 (group 1)
    assert interleaved_groups(weights, (3, 3), 8) == 1
