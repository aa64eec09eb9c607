"""Streaming backends behind one interface (:class:`Backend`), chosen by name or by the model file."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Callable

from vidconv_edge.errors import UserError
from vidconv_edge.stream.backends.base import Backend

BACKENDS = ("torch", "onnxruntime", "finn-sim", "pynq")


def infer_backend(path: str | os.PathLike | None) -> str:
    """The backend a model argument implies: ``.onnx`` or an ONNX folder -> onnxruntime,
    a build-fpga folder -> finn-sim, a deploy bundle (manifest.json) -> pynq, anything else (a checkpoint) -> torch."""
    if path is None:
        return "torch"
    p = Path(path)
    if p.suffix == ".onnx" or (p.is_dir() and (p / "early.onnx").is_file()):
        return "onnxruntime"
    if p.name == "manifest.json" or (p.is_dir() and (p / "manifest.json").is_file()):
        return "pynq"
    if p.is_dir() and (p / "report.json").is_file():
        return "finn-sim"
    return "torch"


def _open_torch(path: str | os.PathLike | None) -> Backend:
    from vidconv_edge.stream.backends.torch_backend import TorchBackend

    if path is None:
        from vidconv_edge.assets import default_checkpoint

        path = default_checkpoint()
    if Path(path).is_dir():
        raise UserError(f"backend torch needs a checkpoint file, got the folder {path}")
    return TorchBackend.from_checkpoint(path)


def _open_onnx(path: str | os.PathLike | None) -> Backend:
    from vidconv_edge.stream.backends.onnx_backend import OnnxBackend

    if path is None or (Path(path).suffix != ".onnx" and not Path(path).is_dir()):  # a checkpoint: its cached parts
        from vidconv_edge.assets import default_checkpoint
        from vidconv_edge.stream.backends.onnx_cache import cached_parts

        path = cached_parts(default_checkpoint() if path is None else path)
    return OnnxBackend(path)


def _open_finn_sim(path: str | os.PathLike | None) -> Backend:
    if importlib.util.find_spec("finn") is None:
        raise UserError("backend finn-sim needs FINN (finn-plus): install it with scripts/install.sh")
    from vidconv_edge.stream.backends.finn_sim import open_finn_sim

    return open_finn_sim(path)


def _open_pynq(path: str | os.PathLike | None) -> Backend:
    from vidconv_edge.stream.backends.pynq_backend import open_pynq

    return open_pynq(path)


_OPENERS: dict[str, Callable[[str | os.PathLike | None], Backend]] = {
    "torch": _open_torch,
    "onnxruntime": _open_onnx,
    "finn-sim": _open_finn_sim,
    "pynq": _open_pynq,
}


def open_backend(path: str | os.PathLike | None = None, backend: str | None = None) -> Backend:
    """Load ``path`` (checkpoint, ONNX early part or folder, build-fpga folder) with ``backend``
    (inferred from ``path`` when None; the bundled default checkpoint when ``path`` is None)."""
    name = backend or infer_backend(path)
    if name not in _OPENERS:
        raise UserError(f"unknown backend '{name}': choose one of {', '.join(BACKENDS)}")
    return _OPENERS[name](path)


__all__ = ["BACKENDS", "Backend", "infer_backend", "open_backend"]
