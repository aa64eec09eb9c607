"""Our check steps: every node of the edge models must end up in the dataflow partition."""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper

from vidconv_edge.hw.config import HwBuildConfig
from vidconv_edge.hw.errors import NotInHardware

HW_DOMAIN = "finn.custom_op.fpgadataflow"

# What to try for the usual leftovers (op type -> hint).
HINTS = {
    "MultiThreshold": "a float threshold: quantize the input to uint8 / give both inputs of an add one shared quantizer",
    "Mul": "a scale streamlining could not absorb: check the quantizers around it (shared quantizer on residual adds)",
    "Add": "a bias or residual add that was not streamlined: share the quantizer of both inputs",
    "Transpose": "a layout transpose that did not cancel through the forks and joins",
    "Conv": "a convolution FINN could not lower (grouped conv with 1 < groups < C is not supported)",
    "Tile": "Tile/repeat has no HW op: use the padded all-ones dilated conv (tile_mode='conv')",
    "ReduceMean": "adaptive average pooling: export it as GlobalAveragePool",
    "LayerNormalization": "LayerNorm has no integer HW op: use the BN/ReLU edge variant",
}


def non_hw_nodes(model: ModelWrapper) -> list[tuple[int, str, str]]:
    """(position, name, op type) of every node that is not a FINN HW layer."""
    return [(i, n.name, n.op_type) for i, n in enumerate(model.graph.node) if not n.domain.startswith(HW_DOMAIN)]


def step_check_all_hw(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Stop when a node would stay outside the dataflow partition, naming it and its position."""
    left = non_hw_nodes(model)
    if left:
        pos, name, op = left[0]
        others = ", ".join(f"{n} ({o}) at {p}" for p, n, o in left[1:6])
        more = f"; also {others}" if others else ""
        hint = HINTS.get(op, "no FINN HW layer for this op")
        raise NotInHardware(
            f"{cfg.part_name}-net: node '{name}' ({op}) at position {pos} of {len(model.graph.node)} would stay "
            f"outside the dataflow partition ({hint}){more}"
        )
    return model
