"""The exact QDQ rewrites for ONNX Runtime's int8 kernels, on graphs small enough to check by hand."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper

from vidconv_edge.export.qdq import int8_kernel_report, run_ort
from vidconv_edge.export.qdq_ort import UnsignedWeights, ort_int8_friendly

CHANNELS = 64


def _qdq_conv(weight: np.ndarray, clip: tuple[int, int] | None = None, out_scale: float = 1.0) -> onnx.ModelProto:
    """uint8 pixels (scale 1) -> DQ -> Conv 1x1 (int8 weights, scale 1, optionally through a constant Clip) -> Q -> DQ."""
    inits = [
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(0, np.uint8), "zp_u8"),
        numpy_helper.from_array(np.array(out_scale, np.float32), "out_scale"),
        numpy_helper.from_array(weight, "w_int"),
        numpy_helper.from_array(np.zeros(weight.shape[0], np.int8), "w_zp"),
        numpy_helper.from_array(np.ones(weight.shape[0], np.float32), "w_scale"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "one", "zp_u8"], ["xq"], name="q_in"),
        helper.make_node("DequantizeLinear", ["xq", "one", "zp_u8"], ["xf"], name="dq_in"),
        helper.make_node("DequantizeLinear", ["w_clip" if clip else "w_int", "w_scale", "w_zp"], ["w"], name="dq_w", axis=0),
        helper.make_node("Conv", ["xf", "w"], ["y"], name="conv"),
        helper.make_node("QuantizeLinear", ["y", "out_scale", "zp_u8"], ["yq"], name="q_out"),
        helper.make_node("DequantizeLinear", ["yq", "out_scale", "zp_u8"], ["out"], name="dq_out"),
    ]
    if clip:
        inits += [numpy_helper.from_array(np.array(b, np.int8), n) for b, n in zip(clip, ("lo", "hi"))]
        nodes.insert(2, helper.make_node("Clip", ["w_int", "lo", "hi"], ["w_clip"], name="clip_w"))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, weight.shape[1], 2, 2])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _exact(x: np.ndarray, weight: np.ndarray, out_scale: float) -> np.ndarray:
    acc = np.einsum("oc,nchw->nohw", weight[:, :, 0, 0].astype(np.int64), x.astype(np.int64))
    return np.clip(np.round(acc / out_scale), 0, 255) * out_scale


def test_int8_conv_that_saturates_int16_pair_sums_is_exact_after_the_rewrite(tmp_path):
    """255 x 127 + 255 x 127 > 32767: ORT's u8s8 kernels on AVX2 without VNNI would saturate each pair; u8u8 is exact."""
    weight = np.full((4, CHANNELS, 1, 1), 127, np.int8)
    weight[1] = -128
    weight[2, ::2] = -100
    x = np.full((1, CHANNELS, 2, 2), 255.0, np.float32)
    x[0, :, 0, 0] = np.arange(CHANNELS) * 4 % 256
    out_scale = 255.0 * 127 * CHANNELS / 250  # the largest accumulator maps to 250
    proto = ort_int8_friendly(_qdq_conv(weight, out_scale=out_scale))
    onnx.save(proto, tmp_path / "m.onnx")
    assert int8_kernel_report(tmp_path / "m.onnx")["int8"] == {"QLinearConv": 1}
    expected = _exact(x, weight, out_scale)
    assert expected.max() == pytest.approx(250 * out_scale)
    np.testing.assert_allclose(run_ort(tmp_path / "m.onnx", x), expected, rtol=0, atol=out_scale * 1.001)
    np.testing.assert_allclose(run_ort(tmp_path / "m.onnx", x, optimize=False), expected, rtol=1e-6)
    w_dq = next(n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.name == "dq_w")
    assert numpy_helper.to_array(next(t for t in proto.graph.initializer if t.name == w_dq.input[0])).dtype == np.uint8


def test_unsigned_weights_fold_a_constant_clip_and_keep_every_dequantized_value(tmp_path):
    rng = np.random.default_rng(0)
    weight = rng.integers(-128, 128, (3, 8, 1, 1)).astype(np.int8)
    before = _qdq_conv(weight, clip=(-7, 7))
    after, modified = UnsignedWeights().apply(ModelWrapper(onnx.load_from_string(before.SerializeToString())))
    assert modified is False  # one pass rewrites every weight; nothing to repeat
    dq = next(n for n in after.graph.node if n.name == "dq_w")
    values, zp = after.get_initializer(dq.input[0]), after.get_initializer(dq.input[2])
    assert values.dtype == zp.dtype == np.uint8 and (zp == 128).all()
    np.testing.assert_array_equal(values.astype(np.int16) - 128, np.clip(weight, -7, 7))
    x = rng.integers(0, 256, (1, 8, 2, 2)).astype(np.float32)
    onnx.save(before, tmp_path / "before.onnx")
    onnx.save(after.model, tmp_path / "after.onnx")
    np.testing.assert_array_equal(
        run_ort(tmp_path / "after.onnx", x, optimize=False), run_ort(tmp_path / "before.onnx", x, optimize=False)
    )


def test_unsigned_weights_leave_activations_and_int32_biases_alone():
    proto = _qdq_conv(np.ones((2, 4, 1, 1), np.int8))
    bias = numpy_helper.from_array(np.array([5, -3], np.int32), "b_int")
    proto.graph.initializer.append(bias)
    proto.graph.node.append(helper.make_node("DequantizeLinear", ["b_int", "one"], ["b"], name="dq_b"))
    model, _ = UnsignedWeights().apply(ModelWrapper(proto))
    names = {n.name: list(n.input) for n in model.graph.node}
    assert names["dq_in"] == ["xq", "one", "zp_u8"] and names["dq_out"] == ["yq", "out_scale", "zp_u8"]
    assert names["dq_b"] == ["b_int", "one"]
    assert names["dq_w"][0] == "dq_w/weight_u8"
