"""Row masks of the SEVNet FPGA form (``quant.sevnet_fpga``) as FINN ``ElementwiseMul`` HW layers.

A mask is a ``Mul`` by a constant 0/1 tensor (not all ones) right after an activation quantizer; after
the QONNX conversion: ``MultiThreshold -> Mul(scale) -> Mul(mask)``. FINN's streamlining would collapse
the two Muls (``CollapseRepeatedMul``) into a float per-row scale no HW layer takes, so:

- :class:`MasksToElementwiseMul` makes it ``MultiThreshold -> ElementwiseMul(mask) -> Mul(scale)``: an
  integer mask on the integer thresholds' output (streamlining matches ``Mul`` only, so it stays), the scale
  moves on as usual;
- :class:`MoveTransposeBeforeMask` / :class:`MoveTransposePastMask` move the layout transposes across
  the masks (constant permuted), so that they reach the thresholds / each other and cancel;
- :class:`MaskDatatypes`: a 0/1 mask keeps its input's datatype (FINN infers the product's wider one).
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes

from vidconv_edge.hw.config import HwBuildConfig
from vidconv_edge.hw.precision import InFloat64

HW_DOMAIN = "finn.custom_op.fpgadataflow"
TO_NHWC, TO_NCHW = [0, 2, 3, 1], [0, 3, 1, 2]


def _const(model: ModelWrapper, node) -> np.ndarray | None:
    return model.get_initializer(node.input[1]) if len(node.input) > 1 else None


def is_row_mask(model: ModelWrapper, node) -> bool:
    """A ``Mul`` by a constant 0/1 tensor that is not all ones."""
    c = _const(model, node) if node.op_type == "Mul" else None
    return c is not None and c.size > 1 and bool(np.isin(c, (0.0, 1.0)).all()) and not bool((c == 1).all())


def is_mask_node(model: ModelWrapper, node) -> bool:
    """An ``ElementwiseMul`` by a constant 0/1 tensor (a converted row mask)."""
    c = _const(model, node) if node.op_type.startswith("ElementwiseMul") else None
    return c is not None and bool(np.isin(c, (0.0, 1.0)).all())


def has_masks(model: ModelWrapper) -> bool:
    return any(is_mask_node(model, n) or is_row_mask(model, n) for n in model.graph.node)


def _scalar_mul(model: ModelWrapper, node) -> bool:
    c = _const(model, node) if node is not None and node.op_type == "Mul" else None
    return c is not None and c.size == 1


def _set_mask_const(model: ModelWrapper, node, const: np.ndarray) -> None:
    """A fresh initializer for ``node``'s mask (masks may share one constant tensor)."""
    name = model.make_new_valueinfo_name()
    model.set_initializer(name, const)
    model.set_tensor_datatype(name, DataType["UINT1"])
    node.input[1] = name


def _set_shapes(node, shape: list[int], const_shape: list[int]) -> None:
    from qonnx.custom_op.registry import getCustomOp

    inst = getCustomOp(node)
    inst.set_nodeattr("lhs_shape", shape)
    inst.set_nodeattr("out_shape", shape)
    inst.set_nodeattr("rhs_shape", const_shape)


def _move_before(model: ModelWrapper, first, second) -> None:
    """Put ``first`` just before ``second`` in the node list (topological order after a swap)."""
    nodes = list(model.graph.node)
    i, j = nodes.index(first), nodes.index(second)
    if i > j:
        model.graph.node.remove(first)
        model.graph.node.insert(j, first)


class MasksToElementwiseMul(Transformation):
    """``MultiThreshold -> Mul(scalar s) -> Mul(mask)``  ==>  ``MultiThreshold -> ElementwiseMul(mask) -> Mul(s)``."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for mask in model.graph.node:
            if not is_row_mask(model, mask):
                continue
            scale = model.find_producer(mask.input[0])
            if not _scalar_mul(model, scale) or len(model.find_consumers(scale.output[0])) != 1:
                raise ValueError(f"row mask '{mask.name}' does not follow an activation quantizer's scale")
            ints = scale.input[0]
            dt = model.get_tensor_datatype(ints)
            if not dt.is_integer():
                raise ValueError(f"row mask '{mask.name}' follows a {dt.name} tensor, not a quantizer's integers")
            shape = model.get_tensor_shape(ints)
            const = model.get_initializer(mask.input[1])
            masked = model.make_new_valueinfo_name()
            emul = helper.make_node(
                "ElementwiseMul", [ints, mask.input[1]], [masked], domain=HW_DOMAIN, backend="fpgadataflow",
                name=f"{mask.name}_mask", lhs_shape=shape, rhs_shape=list(const.shape), out_shape=shape,
                lhs_dtype=dt.name, rhs_dtype="UINT1", out_dtype=dt.name, lhs_style="input", rhs_style="const",
            )  # fmt: skip
            _set_mask_const(model, emul, const)
            model.graph.node.insert(list(model.graph.node).index(scale), emul)
            scale.input[0], scale.output[0] = masked, mask.output[0]
            model.graph.node.remove(mask)
            model.set_tensor_shape(masked, shape)
            model.set_tensor_datatype(masked, dt)
            return model.transform(InferShapes()), True
        return model, False


def _swap_with_mask(model: ModelWrapper, first, second, mask, shape: list[int]) -> None:
    """``first -> second`` (a layout Transpose and the ``mask``, either order) ==> ``second -> first``, the mask's
    constant in NHWC (where it now sits); ``shape``: the tensor between the two afterwards."""
    x, mid, out = first.input[0], first.output[0], second.output[0]
    const = np.transpose(model.get_initializer(mask.input[1]), TO_NHWC)
    _set_mask_const(model, mask, const)
    second.input[0], second.output[0] = x, mid
    first.input[0], first.output[0] = mid, out
    model.set_tensor_shape(mid, shape)
    model.set_tensor_datatype(mid, model.get_tensor_datatype(x))
    _set_shapes(mask, shape, list(const.shape))
    _move_before(model, second, first)


class MoveTransposeBeforeMask(Transformation):
    """``mask -> Transpose(to NHWC)``  ==>  ``Transpose -> mask`` (constant permuted)."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for tr in model.graph.node:
            if tr.op_type != "Transpose" or list(tr.attribute[0].ints) != TO_NHWC:
                continue
            em = model.find_producer(tr.input[0])
            if em is None or not is_mask_node(model, em) or len(model.find_consumers(em.output[0])) != 1:
                continue
            shape = [int(s) for s in np.array(model.get_tensor_shape(em.input[0]))[TO_NHWC]]
            _swap_with_mask(model, em, tr, em, shape)
            return model.transform(InferShapes()), True
        return model, False


class MoveTransposePastMask(Transformation):
    """``Transpose(to NCHW) -> mask``  ==>  ``mask (constant permuted back) -> Transpose``."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for tr in model.graph.node:
            if tr.op_type != "Transpose" or list(tr.attribute[0].ints) != TO_NCHW:
                continue
            after = model.find_consumers(tr.output[0]) or []
            if len(after) != 1 or not is_mask_node(model, after[0]):
                continue
            _swap_with_mask(model, tr, after[0], after[0], model.get_tensor_shape(tr.input[0]))
            return model.transform(InferShapes()), True
        return model, False


class MaskDatatypes(Transformation):
    """Every 0/1 mask ``ElementwiseMul``: output datatype = input datatype, mask UINT1."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from qonnx.custom_op.registry import getCustomOp

        for node in model.graph.node:
            if not is_mask_node(model, node):
                continue
            dt = model.get_tensor_datatype(node.input[0])
            inst = getCustomOp(node)
            for attr, value in (("lhs_dtype", dt.name), ("rhs_dtype", "UINT1"), ("out_dtype", dt.name)):
                inst.set_nodeattr(attr, value)
            model.set_tensor_datatype(node.input[1], DataType["UINT1"])
            model.set_tensor_datatype(node.output[0], dt)
        return model, False


def step_row_masks(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """The row masks (if any) as integer ``ElementwiseMul`` layers, before streamlining."""
    model = model.transform(InFloat64(MasksToElementwiseMul()))
    return model.transform(MaskDatatypes())


def step_mask_datatypes(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """After the HW conversion: the masks keep their input datatypes (FINN's inference widens them)."""
    return model.transform(MaskDatatypes())
