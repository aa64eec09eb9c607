"""The one place that decides whether the Xilinx-tool steps of the flow can run.

Steps up to HLS/RTL code generation are pure Python. IP generation needs ``vitis_hls``; FIFO sizing,
stitched IP, rtlsim, synthesis and the bitfile need ``vivado`` (Alveo bitfiles also ``v++``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from vidconv_edge.errors import UserError

# step name -> the tools it needs (in the order they are checked)
TOOL_STEPS: dict[str, tuple[str, ...]] = {
    "step_hw_ipgen": ("vitis_hls", "vivado"),
    "step_set_fifo_depths": ("vivado",),
    "step_create_stitched_ip": ("vivado",),
    "step_measure_rtlsim_performance": ("vivado",),
    "step_synthesize_bitfile": ("vivado",),
    "step_make_driver": ("vivado",),
    "step_deployment_package": ("vivado",),
}
_ENV = {"vivado": "XILINX_VIVADO", "vitis_hls": "XILINX_HLS", "v++": "XILINX_VITIS"}


class ToolMissing(UserError):
    """A requested step needs a Xilinx tool that is not installed."""


def find_tool(tool: str) -> str | None:
    """Path of ``tool``: on PATH, or in ``$XILINX_*/bin``; None when absent."""
    found = shutil.which(tool)
    if found:
        return found
    root = os.environ.get(_ENV.get(tool, ""), "")
    candidate = Path(root) / "bin" / tool if root else None
    return str(candidate) if candidate is not None and candidate.is_file() else None


@dataclass(frozen=True)
class ToolCheck:
    step: str
    missing: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.missing


def check_step(step: str, shell_flow: str = "vivado_zynq") -> ToolCheck:
    """Which tools ``step`` needs and are missing (empty for pure-Python steps)."""
    tools = TOOL_STEPS.get(step, ())
    if step == "step_synthesize_bitfile" and shell_flow == "vitis_alveo":
        tools = tools + ("v++",)
    return ToolCheck(step, tuple(t for t in tools if find_tool(t) is None))


def needs_tools(step: str) -> bool:
    return step in TOOL_STEPS


def boundary_message(check: ToolCheck, produced: list[str]) -> str:
    """One message: the step that cannot run, the missing tool(s), and what the build produced so far."""
    tools = " and ".join(check.missing)
    done = ", ".join(produced) if produced else "nothing"
    verb = "which is" if len(check.missing) == 1 else "which are"
    return (
        f"{check.step} needs {tools}, {verb} not installed (not on PATH, no "
        f"{' / '.join('$' + _ENV[t] for t in check.missing if t in _ENV)}); "
        f"stopped before it. Produced so far: {done}"
    )


def finn_tool_env() -> dict[str, str]:
    """Environment FINN reads at the end of a build: ``XILINX_VIVADO`` must name a path even when absent."""
    vivado = find_tool("vivado")
    root = str(Path(vivado).resolve().parent.parent) if vivado else os.environ.get("XILINX_VIVADO", "/opt/Xilinx/none")
    return {"XILINX_VIVADO": root}
