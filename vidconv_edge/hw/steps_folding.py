"""Our memory-placement step, run after FINN's folding: balance LUTs against BRAM (and URAM) for the board.

Knobs, tried together, keeping the setting whose FINN estimate has the lowest
``max(LUT use, BRAM18 use, URAM use)`` of the board, counting the parts built before this one:
- sliding-window generators whose LUT estimate exceeds a limit keep their line buffers in BRAM;
- threshold memories at least a given depth deep go to BRAM, smaller ones to LUTRAM (FINN picks the
  primitive with the least waste, i.e. LUTRAM, below the BRAM trigger);
- on parts with URAM, threshold memories at least a (larger) depth deep go to URAM: 8-bit activations
  need 255 thresholds per channel, and W8A8 ``vic_edge`` on the ZCU104 fits only with its deepest
  threshold memories in URAM (LUTRAM alone: 100% of the LUTs, BRAM alone: ~1,200 BRAM18 of 624).
  Never URAM on parts without it: with FINN's default triggers (0, 0) every threshold memory would be
  estimated in URAM, also there.
"""

from __future__ import annotations

from functools import partial

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from vidconv_edge.hw.config import HwBuildConfig
from vidconv_edge.hw.report import margin_for

from finn.analysis.fpgadataflow.res_estimation import res_estimation  # noqa: E402  (after config)

NO_URAM_DEPTH = 2**30
SWG_BLOCK_LUTS = (1500, NO_URAM_DEPTH)  # SWG LUT estimate above which its buffer goes to BRAM
THRESHOLD_BRAM_DEPTHS = (256, 1024, 8192, NO_URAM_DEPTH)  # threshold memory depth from which BRAM is used
THRESHOLD_URAM_DEPTHS = (4096, 8192, 16384, 65536)  # ... and URAM, on parts that have it


def apply_memory_styles(
    model: ModelWrapper, part: str, swg_block_lut: int, threshold_bram_depth: int, threshold_uram_depth: int = NO_URAM_DEPTH
) -> list[str]:
    """Set the SWG ram styles and threshold triggers; returns the SWGs put in BRAM."""
    moved = []
    for node in model.graph.node:
        inst = getCustomOp(node)
        attrs = inst.get_nodeattr_types()
        if node.op_type.startswith("ConvolutionInputGenerator") and "ram_style" in attrs:
            inst.set_nodeattr("ram_style", "distributed")
            if inst.lut_estimation(part) > swg_block_lut:
                inst.set_nodeattr("ram_style", "block")
                moved.append(node.name)
        if "depth_trigger_bram" in attrs:
            inst.set_nodeattr("depth_trigger_bram", threshold_bram_depth)
            inst.set_nodeattr("depth_trigger_uram", threshold_uram_depth)
    return moved


def estimated_use(model: ModelWrapper, cfg: HwBuildConfig) -> tuple[float, dict]:
    """max(LUT use, BRAM18 use, URAM use) of the board with this part, the parts built before it and the
    report's margin; this part's totals."""
    per_layer = model.analysis(partial(res_estimation, fpgapart=cfg._resolve_fpga_part()))
    total = {k: sum(r.get(k, 0) for r in per_layer.values()) for k in ("LUT", "BRAM_18K", "URAM")}
    board = {"LUT": cfg.lut_used + total["LUT"], "BRAM_18K": cfg.bram_used + total["BRAM_18K"], "DSP": 0}
    margin = margin_for(board)
    lut = (board["LUT"] + margin["LUT"]) / cfg.lut_capacity
    bram = (board["BRAM_18K"] + margin["BRAM_18K"]) / cfg.bram_capacity
    uram = (cfg.uram_used + total["URAM"]) / cfg.uram_capacity if cfg.uram_capacity else 0.0
    return max(lut, bram, uram), total


def step_memory_styles(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Pick the SWG / threshold memory placement that balances LUT, BRAM and URAM use on the board."""
    part = cfg._resolve_fpga_part()
    uram_depths = (*THRESHOLD_URAM_DEPTHS, NO_URAM_DEPTH) if cfg.uram_capacity else (NO_URAM_DEPTH,)
    tried = []
    for swg in SWG_BLOCK_LUTS:
        for depth in THRESHOLD_BRAM_DEPTHS:
            for uram_depth in uram_depths:
                apply_memory_styles(model, part, swg, depth, uram_depth)
                use, total = estimated_use(model, cfg)
                tried.append((use, swg, depth, uram_depth, total))
    use, swg, depth, uram_depth, total = min(tried, key=lambda t: t[0])
    moved = apply_memory_styles(model, part, swg, depth, uram_depth)
    cfg.io.memory_styles = {
        "swg_block_lut": swg, "threshold_bram_depth": depth, "threshold_uram_depth": uram_depth,
        "swg_in_bram": moved, "estimate": total,
        "candidates": [
            {"swg_block_lut": s, "threshold_bram_depth": d, "threshold_uram_depth": u, **t} for _, s, d, u, t in tried
        ],
    }  # fmt: skip
    return model
