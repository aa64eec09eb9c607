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


def _int_attr(node, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def fpga_blockers(model: ModelWrapper) -> list[tuple[int, str, str, str]]:
    """(position, name, op type, why) of the QONNX nodes FINN cannot put in a streaming dataflow graph:
    batch folds of a clip (the batch dimension must stay 1), layout reshapes/transposes between them, and
    grouped convolutions with 1 < groups < channels."""
    found = []
    for i, node in enumerate(model.graph.node):
        shape_in = model.get_tensor_shape(node.input[0]) if node.input else None
        shape_out = model.get_tensor_shape(node.output[0])
        if node.op_type in ("Reshape", "Transpose") and shape_in and shape_out:
            if shape_in[0] != 1 or shape_out[0] != 1:
                why = (f"turns {shape_in} into {shape_out}: a batch of frames folded in or out of the clip, but a "
                       "FINN dataflow graph streams one batch-1 tensor")  # fmt: skip
                found.append((i, node.name, node.op_type, why))
        elif node.op_type == "Conv":
            groups, cin = _int_attr(node, "group", 1), shape_in[1] if shape_in else 0
            if 1 < groups < cin:
                why = f"a grouped convolution ({groups} groups of {cin // groups} channels) that FINN does not lower"
                found.append((i, node.name, node.op_type, why))
    return found


def check_fpga_graph(model: ModelWrapper, name: str) -> None:
    """NotInHardware naming the first node (and counting the others) FINN cannot build, if any."""
    found = fpga_blockers(model)
    if not found:
        return
    pos, node, op, why = found[0]
    kinds: dict[str, list] = {}
    for p, n, o, _ in found[1:]:
        kinds.setdefault(o, []).append(f"'{n}' at {p}")
    also = "; ".join(
        f"{len(v)} {'other ' if k == op else ''}{k} ({', '.join(v[:3])}{', ...' if len(v) > 3 else ''})"
        for k, v in kinds.items()
    )
    raise NotInHardware(
        f"{name}: node '{node}' ({op}) at position {pos} of {len(model.graph.node)} {why}"
        f"{'; also ' + also if also else ''}. FINN needs per-frame / per-window 4-D parts like VidConv's early/later "
        "split (build-fpga builds vic_edge) and grouped convolutions split into dense or depthwise ones"
    )
