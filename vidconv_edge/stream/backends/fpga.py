"""The FPGA backends, ``finn-sim`` and ``pynq``: registered, but they need the build-fpga output.

Both run the hardware graphs written by ``vidconv-edge build-fpga``. Until that output and its
runtime exist, asking for them is a clear ``UserError`` that says what is missing. ``pynq`` is
imported only when asked for (it exists on the board only).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from vidconv_edge.errors import UserError

BUILD_FILES = "report.json + the HW graphs of the early and later parts"


def _build_dir(backend: str, path: str | os.PathLike | None) -> Path:
    folder = Path(path) if path is not None else None
    if folder is None or not folder.is_dir() or not (folder / "report.json").is_file():
        got = "no model argument" if folder is None else f"'{folder}'"
        raise UserError(
            f"backend {backend} needs a build-fpga output folder ({BUILD_FILES}); got {got}. "
            "Build one with `vidconv-edge build-fpga --out DIR` and pass DIR"
        )
    return folder


def open_finn_sim(path: str | os.PathLike | None):
    """FINN's python execution of the HW-layer graphs of a build-fpga folder."""
    folder = _build_dir("finn-sim", path)
    raise UserError(
        f"backend finn-sim: {folder} has a report.json, but this version of vidconv-edge has no "
        "runtime for executing build-fpga HW graphs (the FINN build flow, vidconv_edge.hw); "
        "use --backend onnxruntime with the QDQ early/later ONNX parts for an integer CPU reference"
    )


def open_pynq(path: str | os.PathLike | None):
    """The accelerator on a PYNQ board, through the deploy bundle of build-fpga."""
    if importlib.util.find_spec("pynq") is None:
        raise UserError(
            "backend pynq runs on the board only: it needs the 'pynq' package (a PYNQ board image, "
            "plus `pip install vidconv-edge[board]`) and the deploy/ folder of a build-fpga output"
        )
    folder = _build_dir("pynq", path)
    raise UserError(
        f"backend pynq: {folder} holds no deploy/ bundle with a bitfile this version can drive; "
        "build it with `vidconv-edge build-fpga` on a machine with Vivado"
    )
