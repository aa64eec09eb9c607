"""The build configuration: FINN's ``DataflowBuildConfig`` plus the options of our own steps.

Importing this module imports FINN (slow, ~15 s): only the flow and the steps do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vidconv_edge.hw.finn_env import prepare_finn

prepare_finn()

from finn.builder.build_dataflow_config import DataflowBuildConfig  # noqa: E402


@dataclass
class HwBuildConfig(DataflowBuildConfig):
    """``DataflowBuildConfig`` (FINN steps read it) + vidconv-edge options (our steps read them).

    ``io`` is filled by the steps: what the accelerator's input and output streams carry.
    """

    part_name: str = "early"
    input_scale: float | None = None  # later-net: scale of the early-net's integer output
    input_datatype: str | None = None  # later-net: FINN datatype of that output, e.g. "INT4"
    swg_block_lut: int = 1500  # sliding-window generators estimated above this many LUTs go to BRAM
    threshold_bram_depth: int = 8192  # threshold memories at least this deep go to BRAM, smaller ones to LUTRAM
    has_uram: bool = False
    verify_samples: int = 2
    io: dict = field(default_factory=dict)
