"""The build configuration: FINN's ``DataflowBuildConfig`` plus the options of our own steps.

Importing this module imports FINN (slow, ~15 s): only the flow and the steps do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vidconv_edge.hw.finn_env import prepare_finn
from vidconv_edge.hw.partio import PartIO

prepare_finn()

from finn.builder.build_dataflow_config import DataflowBuildConfig  # noqa: E402


@dataclass
class HwBuildConfig(DataflowBuildConfig):
    """``DataflowBuildConfig`` (FINN steps read it) + vidconv-edge options (our steps read them).

    ``io`` is filled by the steps: what the accelerator's input and output streams carry (``hw.partio``).
    """

    part_name: str = "early"
    input_scale: float | None = None  # later-net: scale of the early-net's integer output
    input_datatype: str | None = None  # later-net: FINN datatype of that output, e.g. "INT4"
    lut_capacity: int = 53_200  # the board's, for step_memory_styles' LUT/BRAM/URAM balance
    bram_capacity: int = 280
    uram_capacity: int = 0
    lut_used: float = 0.0  # by the parts built before this one
    bram_used: float = 0.0
    uram_used: float = 0.0
    verify_samples: int = 2
    strict_verify: bool = True  # False: record a mismatch (verified: false) and go on to the estimates
    # merged design: part -> {"verify_input_npy", "verify_expected_output_npy"}, in graph input/output order
    merged_parts: dict = field(default_factory=dict)
    io: PartIO = field(default_factory=PartIO)
