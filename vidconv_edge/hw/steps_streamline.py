"""Streamlining for VidConv / SEVNet edge networks, and the integer stream interfaces.

FINN's ``step_streamline`` stops at residual forks and joins. Ours (per DESIGN "FINN facts"):
absorb scalar biases into thresholds first, then move scales/biases past forks and residual adds
until nothing changes; lower convs (incl. the temporal branch's dilated depthwise conv and the
all-ones tile conv) to Im2Col + MatMul; push the layout transposes through forks and joins until
they cancel (also across the SEVNet FPGA form's row masks and concats, ``hw.steps_masks``); global
average pooling becomes GlobalAccPool early so its 1/N folds into the next
thresholds; then round and clip the thresholds (integer inputs).

FINN's ``Streamline`` removes "identity" Mul/Add nodes with ``np.isclose`` (atol 1e-5, rtol 1e-5): a BN
whose affine scale is 0.999995 (an untrained BN: 1/sqrt(1 + eps)), or a bias under 1e-5 next to
activations of scale 1e-5, silently disappears and the integer graph no longer equals the QONNX model.
:class:`ExactStreamline` runs the same transformations with an exact identity test.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap

import numpy as np
from onnx import TensorProto, helper
import qonnx.core.data_layout as DataLayout
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import (
    GiveReadableTensorNames,
    GiveUniqueNodeNames,
    RemoveUnusedTensors,
)
from qonnx.transformation.infer_data_layouts import InferDataLayouts
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul

from vidconv_edge.hw.config import HwBuildConfig
from vidconv_edge.hw.partio import StreamFormat
from vidconv_edge.hw.precision import InFloat64, cast_float_tensors
from vidconv_edge.hw.steps_masks import MaskDatatypes, MoveTransposeBeforeMask, MoveTransposePastMask, has_masks

import finn.transformation.streamline.absorb as absorb  # noqa: E402  (after config: FINN is prepared)
import finn.transformation.streamline.reorder as reorder  # noqa: E402
from finn.transformation.fpgadataflow.convert_to_hw.global_acc_pool import InferGlobalAccPoolLayer  # noqa: E402
from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds  # noqa: E402

MAX_ROUNDS = 20


class RemoveExactIdentityOps(Transformation):
    """Remove Add/Sub of exactly 0, Mul/Div by exactly 1, and Identity nodes (no tolerance)."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from qonnx.transformation.remove import remove_node_and_rewire

        for node in model.graph.node:
            neutral = {"Add": 0.0, "Sub": 0.0, "Mul": 1.0, "Div": 1.0}.get(node.op_type)
            value = model.get_initializer(node.input[1]) if neutral is not None else None
            exact = value is not None and bool(np.all(np.asarray(value) == neutral))
            # only when the constant does not broadcast the other input to a larger shape
            if exact and np.asarray(value).size <= int(np.prod(model.get_tensor_shape(node.input[0]) or [1])):
                remove_node_and_rewire(model, node)
                return model, True
            if node.op_type == "Identity":
                remove_node_and_rewire(model, node)
                return model, True
        return model, False


# what FINN's Streamline runs after every step; ours runs the same with RemoveExactIdentityOps for RemoveIdentityOps
FINN_STEP_TAIL = ("RemoveIdentityOps", "GiveUniqueNodeNames", "GiveReadableTensorNames", "InferDataTypes", "InferDataLayouts")


class ExactStreamline(Transformation):
    """FINN's ``Streamline`` transformation list (read from FINN itself), each followed by an exact identity removal.

    The tail after a step that left the graph as it was is skipped: it already ran on that very graph, and it
    changes nothing the second time (most steps find nothing to do; the tail is most of the time)."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph = model.model.SerializeToString()
        for i, t in enumerate(finn_streamline_steps()):
            model = model.transform(InFloat64(t))
            stepped = model.model.SerializeToString()
            if i > 0 and stepped == graph:
                continue
            model = model.transform(RemoveExactIdentityOps())
            model = model.transform(GiveUniqueNodeNames())
            model = model.transform(GiveReadableTensorNames())
            model = model.transform(InferDataTypes())
            model = model.transform(InferDataLayouts())
            graph = model.model.SerializeToString()
        return model, False


def finn_streamline_steps() -> list[Transformation]:
    """New instances of the transformations of FINN's ``Streamline``, in its order."""
    import finn.transformation.streamline as streamline

    return [getattr(streamline, name)() for name in finn_streamline_names()]


@functools.cache
def finn_streamline_names() -> tuple[str, ...]:
    """The class names in FINN's ``Streamline.apply`` list, parsed from its source (a FINN upgrade that changes
    the list changes ours). RuntimeError where the source no longer has the shape this mirrors."""
    import finn.transformation.streamline as streamline

    return parse_streamline(inspect.getsource(streamline.Streamline.apply), vars(streamline))


def parse_streamline(source: str, namespace: dict) -> tuple[str, ...]:
    """The names of ``source``'s list of no-argument transformations, checked: each a Transformation of
    ``namespace``, and the loop over them running :data:`FINN_STEP_TAIL` after each."""
    tree = ast.parse(textwrap.dedent(source))
    lists = [n for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.List)]
    loops = [n for n in ast.walk(tree) if isinstance(n, ast.For) and isinstance(n.iter, ast.Name)]
    if len(lists) != 1 or len(loops) != 1 or loops[0].iter.id != getattr(lists[0].targets[0], "id", None):
        raise RuntimeError("FINN's Streamline is no longer one list of transformations applied in one loop: "
                           "review vidconv_edge/hw/steps_streamline.py (ExactStreamline)")  # fmt: skip
    names = []
    for item in lists[0].value.elts:
        if not (isinstance(item, ast.Call) and isinstance(item.func, ast.Name) and not item.args and not item.keywords):
            raise RuntimeError(f"FINN's Streamline has a step ExactStreamline cannot mirror: {ast.unparse(item)}")
        cls = namespace.get(item.func.id)
        if not (isinstance(cls, type) and issubclass(cls, Transformation)):
            raise RuntimeError(f"FINN's Streamline step {item.func.id} is not a Transformation of its module")
        names.append(item.func.id)
    tail = tuple(
        call.args[0].func.id
        for call in ast.walk(loops[0])
        if isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "transform"
        and call.args and isinstance(call.args[0], ast.Call) and isinstance(call.args[0].func, ast.Name)
    )  # fmt: skip
    if tail != FINN_STEP_TAIL:
        raise RuntimeError(f"FINN's Streamline now runs {', '.join(tail)} after each step (ExactStreamline mirrors "
                           f"{', '.join(FINN_STEP_TAIL)}): review vidconv_edge/hw/steps_streamline.py")  # fmt: skip
    return tuple(names)


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
    """Streamline a residual BN/ReLU network (VidConv blocks, SEVNet modules) down to MultiThreshold + MatMul.

    Runs on the float64 graph of ``step_qonnx_to_finn_float64``; the thresholds are rounded to integers and
    the graph cast back to float32 at the end (``hw.precision``)."""
    masks = has_masks(model)  # the SEVNet FPGA form: its scales also cross the downsample concats
    model = model.transform(InFloat64(absorb.AbsorbScalarBiasIntoMultiThreshold()))
    model = model.transform(ExactStreamline())
    moves = [absorb.AbsorbScalarBiasIntoMultiThreshold(), reorder.MoveLinearPastFork(), reorder.MoveLinearPastEltwiseAdd()]
    if masks:
        moves.append(reorder.MoveMulPastJoinConcat())
    model = until_fixpoint(model, [*(InFloat64(t) for t in moves), ExactStreamline()])
    model = model.transform(InFloat64(LowerConvsToMatMul()))
    transposes = [absorb.AbsorbTransposeIntoMultiThreshold(), reorder.MoveTransposePastFork(),
                  reorder.MoveTransposePastJoinAdd(), absorb.AbsorbConsecutiveTransposes()]  # fmt: skip
    if masks:
        transposes += [MoveTransposeBeforeMask(), MoveTransposePastMask(), reorder.MoveTransposePastJoinConcat()]
    model = until_fixpoint(model, [InFloat64(t) for t in transposes])
    if model.get_nodes_by_op_type("GlobalAveragePool"):
        model = model.transform(InferDataLayouts())
        model = model.transform(InFloat64(InferGlobalAccPoolLayer()))
        model = until_fixpoint(model, [InFloat64(absorb.AbsorbConsecutiveTransposes()), ExactStreamline()])
    model = model.transform(ExactStreamline())
    model = model.transform(RoundAndClipThresholds())
    model = model.transform(MaskDatatypes())
    model = ModelWrapper(cast_float_tensors(model.model, TensorProto.FLOAT))
    model = model.transform(InferDataLayouts())
    return model.transform(RemoveUnusedTensors())


def _is_layout_transpose(node, perm: list[int]) -> bool:
    return node.op_type == "Transpose" and [a for a in node.attribute if a.name == "perm"][0].ints == perm


def _transpose_before_threshold(model: ModelWrapper, mt) -> None:
    """input -> MultiThreshold (NCHW) -> Transpose to NHWC  ==>  input -> Transpose -> MultiThreshold (NHWC)."""
    from qonnx.custom_op.registry import getCustomOp

    after = model.find_consumers(mt.output[0]) or []
    if len(after) != 1 or not _is_layout_transpose(after[0], [0, 2, 3, 1]):
        return
    tr = after[0]
    inp, mt_out, tr_out = mt.input[0], mt.output[0], tr.output[0]
    tr.input[0], tr.output[0] = inp, mt_out  # the transpose now reads the graph input
    mt.input[0], mt.output[0] = mt_out, tr_out  # the thresholds read NHWC and write what the transpose wrote
    model.set_tensor_shape(mt_out, model.get_tensor_shape(tr_out))
    model.set_tensor_datatype(mt_out, model.get_tensor_datatype(inp))
    model.set_tensor_layout(mt_out, DataLayout.NHWC)
    model.set_tensor_layout(tr_out, DataLayout.NHWC)
    getCustomOp(mt).set_nodeattr("data_layout", "NHWC")
    nodes = list(model.graph.node)
    i, j = nodes.index(mt), nodes.index(tr)
    model.graph.node.remove(tr)
    model.graph.node.insert(min(i, j), tr)


def step_integer_io(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Make the accelerator's streams what the host and the other partition exchange: NHWC integers.

    Removes the NCHW->NHWC transpose at the input, and the NHWC->NCHW transpose and the output
    quantizer's scalar scale ``Mul`` at the output (the scale goes to the report: ``io.output.scale``).
    """
    inp = model.graph.input[0].name
    first = model.find_consumers(inp) or []
    if len(first) == 1 and first[0].op_type == "MultiThreshold":  # later-net: thresholds, then the transpose
        _transpose_before_threshold(model, first[0])
        first = model.find_consumers(inp) or []
    if len(first) == 1 and _is_layout_transpose(first[0], [0, 2, 3, 1]):
        dtype = model.get_tensor_datatype(inp)
        new_in = first[0].output[0]
        shape = model.get_tensor_shape(new_in)
        model.graph.node.remove(first[0])
        model.graph.input.remove(model.graph.input[0])
        model.graph.input.insert(0, _value_info(model, new_in, shape))
        model.set_tensor_datatype(new_in, dtype)
        model.set_tensor_layout(new_in, DataLayout.NHWC)
        cfg.io.input.layout = "NHWC"
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
    cfg.io.output = StreamFormat(datatype=model.get_tensor_datatype(out).name, scale=scale, layout=layout,
                                 shape=list(model.get_tensor_shape(out)))  # fmt: skip
    model = model.transform(InferShapes())
    model = model.transform(InferDataTypes())
    return model.transform(InferDataLayouts())


def _value_info(model: ModelWrapper, name: str, shape):
    """A graph input/output entry for tensor ``name`` (its intermediate value_info entry removed)."""
    for vi in list(model.graph.value_info):
        if vi.name == name:
            model.graph.value_info.remove(vi)
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))
