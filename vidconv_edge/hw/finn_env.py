"""FINN's process environment: build dir, settings file, Xilinx paths, no XSI simulator."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from vidconv_edge.hw.vivado import finn_tool_env


def finn_environment(out_dir: str | os.PathLike) -> dict[str, str]:
    """The variables FINN needs for a build writing into ``out_dir``: temp files under ``out_dir/finn_tmp``,
    settings from ``out_dir/finn_settings.yaml`` (absent: FINN's defaults, never ~/.finn)."""
    out = Path(out_dir).resolve()
    return {
        "FINN_BUILD_DIR": str(out / "finn_tmp"),
        "FINN_SETTINGS": str(out / "finn_settings.yaml"),
        **finn_tool_env(),
    }


def apply_finn_environment(out_dir: str | os.PathLike) -> dict[str, str]:
    """Set (and create) FINN's environment for ``out_dir``; returns it.

    FINN reads the environment into a process-wide settings object once, at its first use: without a reset, a
    second build in the same process (benchmarks/fpga.py, API users) wrote its generated code into the first
    build's ``finn_tmp``. The cached object is dropped, so FINN rebuilds it from this environment."""
    env = finn_environment(out_dir)
    Path(env["FINN_BUILD_DIR"]).mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    settings = sys.modules.get("finn.util.settings")
    if settings is not None:
        settings._SETTINGS = None
    return env


def prepare_finn() -> None:
    """Make ``import finn.builder`` safe here: no XSI simulator, and a build dir if none was set yet."""
    if "FINN_BUILD_DIR" not in os.environ:
        apply_finn_environment(Path(tempfile.gettempdir()) / "vidconv_edge_finn")
    import finn.xsi

    finn.xsi.SimEngine = None
