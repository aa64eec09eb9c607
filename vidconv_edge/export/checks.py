"""The plain-2D contract of every exported graph: 2D ops only, static shapes everywhere."""

from __future__ import annotations

import onnx
from onnx import shape_inference

from vidconv_edge.errors import UserError

# Ops a deploy graph may hold: 2D convolution and pooling, elementwise math, normalisation,
# matrix products, static layout ops, and the quantisation ops of QONNX / QDQ graphs.
ALLOWED_OPS = frozenset(
    {
        "Conv", "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Erf", "Gelu", "Tanh", "Pow", "Sqrt", "Clip",
        "LayerNormalization", "BatchNormalization", "MatMul", "Gemm", "GlobalAveragePool", "AveragePool",
        "MaxPool", "ReduceMean", "Softmax", "Reshape", "Transpose", "Slice", "Concat", "Pad", "Flatten",
        "Squeeze", "Unsqueeze", "Identity", "Constant", "Split",
        "Quant", "BipolarQuant", "Trunc", "QuantizeLinear", "DequantizeLinear", "QLinearConv",
        "ConvInteger", "MatMulInteger", "QLinearMatMul", "QLinearAdd", "QLinearMul",
        "QLinearGlobalAveragePool", "MultiThreshold",
    }
)  # fmt: skip
SPATIAL_OPS = frozenset({"Conv", "ConvInteger", "QLinearConv", "AveragePool", "MaxPool"})


class NotPlain2DError(UserError):
    """The graph holds an op or a shape outside the plain-2D contract."""


def _static(value_info: onnx.ValueInfoProto) -> bool:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return False
    return all(d.HasField("dim_value") and d.dim_value > 0 for d in t.shape.dim)


def plain_2d_violations(model: onnx.ModelProto) -> list[str]:
    """Every reason ``model`` is not a static plain-2D graph (empty list: it is)."""
    problems = []
    inferred = shape_inference.infer_shapes(model)
    g = inferred.graph
    for i, node in enumerate(g.node):
        where = f"node {i} '{node.name or node.op_type}'"
        if node.op_type not in ALLOWED_OPS:
            problems.append(f"{where}: op {node.op_type} is not a plain 2D op")
        if node.op_type in SPATIAL_OPS:
            for attr in node.attribute:
                if attr.name == "kernel_shape" and len(attr.ints) != 2:
                    problems.append(f"{where}: {node.op_type} with a {len(attr.ints)}D kernel")
    inits = {t.name: t for t in g.initializer}
    for node in g.node:
        if node.op_type in ("Conv", "ConvInteger") and len(node.input) > 1 and node.input[1] in inits:
            if len(inits[node.input[1]].dims) != 4:
                problems.append(f"node '{node.name}': Conv weight of rank {len(inits[node.input[1]].dims)}")
    for vi in list(g.input) + list(g.output):
        if vi.name not in inits and not _static(vi):
            problems.append(f"graph input/output '{vi.name}' has a dynamic or unknown shape")
    for vi in g.value_info:
        if not _static(vi):
            problems.append(f"tensor '{vi.name}' has a dynamic or unknown shape")
    return problems


def check_plain_2d(model: onnx.ModelProto) -> None:
    """Raise :class:`NotPlain2DError` listing every violation of the plain-2D contract."""
    problems = plain_2d_violations(model)
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise NotPlain2DError(f"graph is not plain 2D with static shapes:\n  {shown}{more}")
