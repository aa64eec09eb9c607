"""Float ONNX export: plain 2D, static, ORT == PyTorch, parts compose, metadata, atomic writes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from onnx import TensorProto, helper

from vidconv_edge.errors import UserError
from vidconv_edge.export import onnx as onnx_export
from vidconv_edge.export.checks import NotPlain2DError, check_plain_2d, plain_2d_violations
from vidconv_edge.export.onnx import export_onnx, read_metadata, run_onnx
from vidconv_edge.models import create_model, list_models
from vidconv_edge.models.layers import frames_to_collage

SMALL = {"img_size": 32, "num_classes": 5}
SLOW = {"vic_small", "vic_base"}


def small_model(name: str) -> nn.Module:
    kwargs = dict(SMALL)
    if name.startswith("sevnet"):
        kwargs["frames"] = 4
    return create_model(name, **kwargs).eval()


def clip_for(model: nn.Module) -> torch.Tensor:
    spec = model.input_spec
    return torch.randn(1, spec.frames, 3, spec.size, spec.size)


def logits_of_unit_size(model: nn.Module, clip: torch.Tensor) -> torch.Tensor:
    """Rescale the last Linear so the logits have std 1 (a fresh head gives ~1e-4, below any absolute tolerance)."""
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        scale = 1 / model(clip).std()
        head.weight.mul_(scale)
        head.bias.mul_(scale)
        return model(clip)


def conv_kernel_ranks(graph: onnx.GraphProto) -> set[int]:
    """Spatial rank of every Conv's kernel (its ``kernel_shape``, which the exporter always writes)."""
    ranks = set()
    for node in (n for n in graph.node if n.op_type == "Conv"):
        ranks.add(len(next(a.ints for a in node.attribute if a.name == "kernel_shape")))
    return ranks


@pytest.mark.parametrize(
    "name", [pytest.param(e.name, marks=pytest.mark.slow) if e.name in SLOW else e.name for e in list_models()]
)
def test_onnxruntime_equals_pytorch(name, tmp_path):
    model = small_model(name)
    clip = clip_for(model)
    ref = logits_of_unit_size(model, clip).numpy()
    summary = export_onnx(model, tmp_path / "m.onnx")
    out = run_onnx(tmp_path / "m.onnx", clip.numpy())
    assert ref.std() > 0.5
    assert np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max()  # relative: float32 rounding only
    assert summary.inputs == {"clip": list(clip.shape)}
    assert plain_2d_violations(onnx.load(str(tmp_path / "m.onnx"))) == []
    assert not set(summary.op_counts) & {"Tile", "Expand", "Shape"}
    assert conv_kernel_ranks(onnx.load(str(tmp_path / "m.onnx")).graph) == {2}


def test_sevnet_exports_only_2d_convs(tmp_path):
    export_onnx(small_model("sevnet_g6"), tmp_path / "s.onnx")
    assert conv_kernel_ranks(onnx.load(str(tmp_path / "s.onnx")).graph) == {2}


@pytest.mark.parametrize("kwargs", [{}, {"stack_stage": 1, "tile_mode": "conv"}, {"stack_stage": 3, "layout": (2, 2)}])
def test_parts_compose_to_full(tmp_path, kwargs):
    model = create_model("vic_edge", img_size=64, num_classes=4, **kwargs).eval()
    for part in ("full", "early", "later"):
        export_onnx(model, tmp_path / f"{part}.onnx", part=part)
    clip = clip_for(model)
    frames = clip[0].numpy()
    feats = np.concatenate([run_onnx(tmp_path / "early.onnx", f[None]) for f in frames])
    collage = frames_to_collage(torch.from_numpy(feats), model.layout).numpy()
    later = run_onnx(tmp_path / "later.onnx", collage)
    full = run_onnx(tmp_path / "full.onnx", clip.numpy())
    assert np.abs(later - full).max() <= 1e-4
    with torch.no_grad():
        assert np.abs(full - model(clip).numpy()).max() <= 1e-4


def test_metadata_travels_with_the_file(tmp_path):
    model = create_model("vic_edge", num_classes=3)
    export_onnx(model, tmp_path / "m.onnx", part="early", class_names=["a", "b", "c"])
    meta = read_metadata(tmp_path / "m.onnx")
    assert meta["model"] == "vic_edge" and meta["part"] == "early"
    assert meta["class_names"] == ["a", "b", "c"]
    assert meta["input_spec"]["frames"] == 9 and meta["input_spec"]["size"] == 96
    assert meta["input_spec"]["layout"] == [3, 3]
    assert meta["input_spec"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert meta["config"]["dims"] == [16, 32, 64, 128]


def test_sevnet_has_no_split(tmp_path):
    with pytest.raises(UserError, match="no early/later split"):
        export_onnx(small_model("sevnet_edge"), tmp_path / "unused.onnx", part="early")
    assert list(tmp_path.iterdir()) == []


def test_check_rejects_3d_conv_and_dynamic_shapes(tmp_path):
    conv3d = nn.Conv3d(2, 2, 3)
    torch.onnx.export(conv3d, (torch.zeros(1, 2, 4, 4, 4),), str(tmp_path / "c3.onnx"), dynamo=False)
    with pytest.raises(NotPlain2DError, match="3D kernel"):
        check_plain_2d(onnx.load(str(tmp_path / "c3.onnx")))

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    dyn = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]))
    with pytest.raises(NotPlain2DError, match="dynamic"):
        check_plain_2d(dyn)

    tile = helper.make_graph(
        [helper.make_node("Tile", ["x", "r"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor("r", TensorProto.INT64, [2], [2, 1])],
    )  # fmt: skip
    with pytest.raises(NotPlain2DError, match="op Tile"):
        check_plain_2d(helper.make_model(tile))


def test_failed_export_leaves_no_file(tmp_path, monkeypatch):
    def refuse(_):
        raise NotPlain2DError("refused for the test")

    monkeypatch.setattr(onnx_export, "check_plain_2d", refuse)
    with pytest.raises(NotPlain2DError):
        export_onnx(create_model("vic_edge"), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_read_metadata_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_metadata(tmp_path / "missing.onnx")
    bare = tmp_path / "bare.onnx"
    torch.onnx.export(nn.ReLU(), (torch.zeros(1, 2),), str(bare), dynamo=False)
    with pytest.raises(UserError, match="no vidconv-edge metadata"):
        read_metadata(bare)


@pytest.mark.parametrize("op", ["Conv", "ConvInteger", "AveragePool", "MaxPool"])
def test_check_names_every_spatial_op_with_a_kernel_that_is_not_2d(op):
    """The check reads kernel_shape: one node per spatial op (convs with a 1x1 weight input), a 3D kernel."""
    elem = TensorProto.UINT8 if op == "ConvInteger" else TensorProto.FLOAT
    out = TensorProto.INT32 if op == "ConvInteger" else TensorProto.FLOAT
    x = helper.make_tensor_value_info("x", elem, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", out, [1, 2, 4, 4])
    w = helper.make_tensor_value_info("w", elem, [2, 2, 1, 1])
    conv = op in ("Conv", "ConvInteger")

    def graph(kernel: list[int]):
        node = helper.make_node(op, ["x", "w"] if conv else ["x"], ["y"], name="n0", kernel_shape=kernel)
        return helper.make_model(helper.make_graph([node], "g", [x, w] if conv else [x], [y]))

    assert plain_2d_violations(graph([1, 1])) == []
    assert f"node 0 'n0': {op} with a 3D kernel" in plain_2d_violations(graph([1, 1, 1]))


def test_check_lists_twenty_violations_and_counts_the_rest():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    nodes = [helper.make_node("Einsum", ["x"], [f"t{i}"], name=f"e{i}", equation="ij->ij") for i in range(23)]
    outs = [helper.make_tensor_value_info(f"t{i}", TensorProto.FLOAT, [1, 2]) for i in range(23)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], outs))
    with pytest.raises(NotPlain2DError) as err:
        check_plain_2d(model)
    lines = str(err.value).splitlines()
    assert lines[0] == "graph is not plain 2D with static shapes:"
    assert lines[1] == "  node 0 'e0': op Einsum is not a plain 2D op" and len(lines) == 22
    assert lines[-1] == "  ... and 3 more"
    unnamed = helper.make_model(helper.make_graph([helper.make_node("Einsum", ["x"], ["t0"], equation="ij->ij")], "g",
                                                  [x], outs[:1]))  # fmt: skip
    assert plain_2d_violations(unnamed) == ["node 0 'Einsum': op Einsum is not a plain 2D op"]


# The plain-2D contract (README "plain-2D export"): what a deploy graph may hold, listed here apart from the code
PLAIN_2D_CONTRACT = [
    "Conv", "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Erf", "Gelu", "Tanh", "Pow", "Sqrt", "Clip",
    "LayerNormalization", "BatchNormalization", "MatMul", "Gemm", "GlobalAveragePool", "AveragePool", "MaxPool",
    "ReduceMean", "Softmax", "Reshape", "Transpose", "Slice", "Concat", "Pad", "Flatten", "Squeeze", "Unsqueeze",
    "Identity", "Constant", "Split", "Quant", "BipolarQuant", "Trunc", "QuantizeLinear", "DequantizeLinear",
    "QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul", "QLinearAdd", "QLinearMul",
    "QLinearGlobalAveragePool", "MultiThreshold",
]  # fmt: skip


def _one_node_graph(op: str) -> onnx.ModelProto:
    """One node of type ``op`` (in a domain of its own, so ONNX's shape inference does not check its inputs)."""
    node = helper.make_node(op, ["x"], ["y"], name="n", domain="test.ops")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])])  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("test.ops", 1)])


@pytest.mark.parametrize("op", PLAIN_2D_CONTRACT)
def test_every_op_of_the_plain_2d_contract_is_accepted(op):
    assert plain_2d_violations(_one_node_graph(op)) == []


@pytest.mark.parametrize("op", ["LSTM", "Resize", "ConvTranspose", "Gather", "NonZero", "TopK", "Conv3D"])
def test_ops_outside_the_contract_are_named(op):
    assert plain_2d_violations(_one_node_graph(op)) == [f"node 0 'n': op {op} is not a plain 2D op"]
    with pytest.raises(NotPlain2DError, match=f"^graph is not plain 2D with static shapes:\n  node 0 'n': op {op} is not"):
        check_plain_2d(_one_node_graph(op))


def test_a_3d_kernel_of_a_qlinearconv_is_named():
    model = _one_node_graph("QLinearConv")
    model.graph.node[0].attribute.append(helper.make_attribute("kernel_shape", [3, 3, 3]))
    assert plain_2d_violations(model) == ["node 0 'n': QLinearConv with a 3D kernel"]


@pytest.mark.parametrize("op,elem", [("Conv", TensorProto.FLOAT), ("ConvInteger", TensorProto.UINT8)])
def test_a_conv_weight_that_is_not_rank_4_is_named_without_a_kernel_shape(op, elem):
    """A 3D conv written without ``kernel_shape`` (it is optional): its rank-5 weight initializer gives it away."""
    x = helper.make_tensor_value_info("x", elem, [1, 2, 4, 6, 6])
    y = helper.make_tensor_value_info("y", TensorProto.INT32 if op == "ConvInteger" else elem, [1, 3, 2, 4, 4])
    w = helper.make_tensor("w", elem, [3, 2, 3, 3, 3], [1] * 54)
    graph = helper.make_graph([helper.make_node(op, ["x", "w"], ["y"], name="c")], "g", [x], [y], [w])
    assert plain_2d_violations(helper.make_model(graph)) == ["node 'c': Conv weight of rank 5"]


def test_shapes_unknown_or_empty_are_named():
    model = _one_node_graph("Relu")
    model.graph.output[0].type.tensor_type.ClearField("shape")  # the custom op's output: nothing infers it
    assert plain_2d_violations(model) == ["graph input/output 'y' has a dynamic or unknown shape"]
    model = _one_node_graph("Relu")
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 0
    assert plain_2d_violations(model) == ["graph input/output 'x' has a dynamic or unknown shape"]
    model = _one_node_graph("Relu")
    model.graph.node[0].output[0] = "t"
    model.graph.node.append(helper.make_node("Identity", ["t"], ["y"], name="i"))
    model.graph.value_info.append(helper.make_tensor_value_info("t", TensorProto.FLOAT, None))
    assert plain_2d_violations(model) == ["tensor 't' has a dynamic or unknown shape"]


@pytest.mark.parametrize("count,more", [(20, None), (21, "  ... and 1 more")])
def test_the_message_lists_twenty_and_counts_only_beyond(count, more):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    nodes = [helper.make_node("Einsum", ["x"], [f"t{i}"], name=f"e{i}", equation="ij->ij") for i in range(count)]
    outs = [helper.make_tensor_value_info(f"t{i}", TensorProto.FLOAT, [1, 2]) for i in range(count)]
    with pytest.raises(NotPlain2DError) as err:
        check_plain_2d(helper.make_model(helper.make_graph(nodes, "g", [x], outs)))
    lines = str(err.value).splitlines()
    assert len(lines) == 21 + (more is not None) and lines[20] == f"  node 19 'e19': op Einsum is not a plain 2D op"
    assert (lines[21] if more else None) == more
