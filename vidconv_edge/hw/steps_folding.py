"""Our memory-placement step, run after FINN's folding: trade LUTs for BRAM where the part needs it.

- sliding-window generators whose LUT estimate exceeds ``cfg.swg_block_lut`` keep their line buffers in BRAM;
- thresholds: memories at least ``cfg.threshold_bram_depth`` deep go to BRAM, smaller ones to LUTRAM
  (FINN picks the primitive with the least waste, i.e. LUTRAM, below the BRAM trigger); on parts without
  URAM nothing goes to URAM (FINN's estimator would otherwise assign it).
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from vidconv_edge.hw.config import HwBuildConfig

NO_URAM_DEPTH = 2**30


def step_memory_styles(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Set ``ram_style`` of large sliding-window generators and the BRAM/URAM depth triggers of thresholds."""
    part = cfg._resolve_fpga_part()
    moved = []
    for node in model.graph.node:
        inst = getCustomOp(node)
        if node.op_type.startswith("ConvolutionInputGenerator") and "ram_style" in inst.get_nodeattr_types():
            if inst.get_nodeattr("ram_style") != "block" and inst.lut_estimation(part) > cfg.swg_block_lut:
                inst.set_nodeattr("ram_style", "block")
                moved.append(node.name)
        if "depth_trigger_bram" in inst.get_nodeattr_types():
            inst.set_nodeattr("depth_trigger_bram", cfg.threshold_bram_depth)
            if not cfg.has_uram:
                inst.set_nodeattr("depth_trigger_uram", NO_URAM_DEPTH)
    cfg.io["swg_in_bram"] = moved
    return model
