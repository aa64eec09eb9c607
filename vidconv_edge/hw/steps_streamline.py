"""Streamlining for VidConv / SEVNet edge networks, and the integer stream interfaces.

FINN's ``step_streamline`` stops at residual forks and joins. Ours (per DESIGN "FINN facts"):
absorb scalar biases into thresholds first, then move scales/biases past forks and residual adds
until nothing changes; lower convs (incl. the temporal branch's dilated depthwise conv and the
all-ones tile conv) to Im2Col + MatMul; push the layout transposes through forks and joins until
they cancel; global average pooling becomes GlobalAccPool early so its 1/N folds into the next
thresholds; then round and clip the thresholds (integer inputs).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import RemoveUnusedTensors
from qonnx.transformation.infer_data_layouts import InferDataLayouts
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul

from vidconv_edge.hw.config import HwBuildConfig

import finn.transformation.streamline.absorb as absorb  # noqa: E402  (after config: FINN is prepared)
import finn.transformation.streamline.reorder as reorder  # noqa: E402
from finn.transformation.fpgadataflow.convert_to_hw.global_acc_pool import InferGlobalAccPoolLayer  # noqa: E402
from finn.transformation.streamline import Streamline  # noqa: E402
from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds  # noqa: E402

MAX_ROUNDS = 20


def _changed(model: ModelWrapper, transformation: Transformation) -> tuple[ModelWrapper, bool]:
    before = model.model.SerializeToString()
    model = model.transform(transformation)
    return model, model.model.SerializeToString() != before


def until_fixpoint(model: ModelWrapper, transformations: list[Transformation], rounds: int = MAX_ROUNDS) -> ModelWrapper:
    """Apply ``transformations`` in turn until a whole round changes nothing."""
    for _ in range(rounds):
        changed = False
        for t in transformations:
            model, c = _changed(model, t)
            changed |= c
        if not changed:
            break
    return model


def step_vidconv_streamline(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Streamline a residual BN/ReLU network (VidConv blocks, SEVNet modules) down to MultiThreshold + MatMul."""
    model = model.transform(absorb.AbsorbScalarBiasIntoMultiThreshold())
    model = model.transform(Streamline())
    model = until_fixpoint(
        model,
        [absorb.AbsorbScalarBiasIntoMultiThreshold(), reorder.MoveLinearPastFork(), reorder.MoveLinearPastEltwiseAdd(), Streamline()],
    )  # fmt: skip
    model = model.transform(LowerConvsToMatMul())
    model = until_fixpoint(
        model,
        [absorb.AbsorbTransposeIntoMultiThreshold(), reorder.MoveTransposePastFork(), reorder.MoveTransposePastJoinAdd(),
         absorb.AbsorbConsecutiveTransposes()],
    )  # fmt: skip
    if model.get_nodes_by_op_type("GlobalAveragePool"):
        model = model.transform(InferDataLayouts())
        model = model.transform(InferGlobalAccPoolLayer())
        model = until_fixpoint(model, [absorb.AbsorbConsecutiveTransposes(), Streamline()])
    model = model.transform(Streamline())
    model = model.transform(RoundAndClipThresholds())
    model = model.transform(InferDataLayouts())
    return model.transform(RemoveUnusedTensors())


def _is_layout_transpose(node, perm: list[int]) -> bool:
    return node.op_type == "Transpose" and [a for a in node.attribute if a.name == "perm"][0].ints == perm


def step_integer_io(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Make the accelerator's streams what the host and the other partition exchange: NHWC integers.

    Removes the NCHW->NHWC transpose at the input, and the NHWC->NCHW transpose and the output
    quantizer's scalar scale ``Mul`` at the output (the scale goes to the report: ``io.output.scale``).
    """
    inp = model.graph.input[0].name
    first = model.find_consumers(inp) or []
    if len(first) == 1 and _is_layout_transpose(first[0], [0, 2, 3, 1]):
        dtype = model.get_tensor_datatype(inp)
        new_in = first[0].output[0]
        shape = model.get_tensor_shape(new_in)
        model.graph.node.remove(first[0])
        model.graph.input.remove(model.graph.input[0])
        model.graph.input.insert(0, _value_info(model, new_in, shape))
        model.set_tensor_datatype(new_in, dtype)
        cfg.io.setdefault("input", {})["layout"] = "NHWC"
    scale = 1.0
    layout = "NCHW" if len(model.get_tensor_shape(model.graph.output[0].name)) == 4 else "NC"
    while True:
        out = model.graph.output[0].name
        node = model.find_producer(out)
        if node is None:
            break
        if _is_layout_transpose(node, [0, 3, 1, 2]):
            layout = "NHWC"
        elif node.op_type == "Mul" and model.get_initializer(node.input[1]) is not None and np.asarray(
            model.get_initializer(node.input[1])
        ).size == 1:
            scale *= float(np.asarray(model.get_initializer(node.input[1])).ravel()[0])
        else:
            break
        new_out = node.input[0]
        shape, dtype = model.get_tensor_shape(new_out), model.get_tensor_datatype(new_out)
        model.graph.node.remove(node)
        model.graph.output.remove(model.graph.output[0])
        model.graph.output.insert(0, _value_info(model, new_out, shape))
        model.set_tensor_datatype(new_out, dtype)
    out = model.graph.output[0].name
    cfg.io["output"] = {"datatype": model.get_tensor_datatype(out).name, "scale": scale, "layout": layout,
                        "shape": list(model.get_tensor_shape(out))}  # fmt: skip
    model = model.transform(InferShapes())
    model = model.transform(InferDataTypes())
    return model.transform(InferDataLayouts())


def _value_info(model: ModelWrapper, name: str, shape):
    """A graph input/output entry for tensor ``name`` (its intermediate value_info entry removed)."""
    for vi in list(model.graph.value_info):
        if vi.name == name:
            model.graph.value_info.remove(vi)
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))
