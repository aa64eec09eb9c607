"""Evaluating any artifact as a model: a checkpoint (float or quantized), an exported ONNX file, a build-fpga folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from vidconv_edge.errors import UserError
from vidconv_edge.models import VideoClassifier

BACKENDS = ("torch", "onnxruntime", "finn-sim")


def load_eval_model(path: str | os.PathLike, backend: str | None = None) -> tuple[VideoClassifier, dict]:
    """(model in eval mode, its metadata) for evaluation or prediction.

    ``torch``: a checkpoint, float or quantized (Brevitas; takes pixel values, its input spec says so).
    ``onnxruntime``: a ``full`` ONNX file written by ``vidconv-edge export`` (float or QDQ int8).
    ``finn-sim``: a ``build-fpga`` folder: FINN's python execution of its verified HW-layer graphs.
    ``backend`` None: chosen by the file (``.onnx`` -> onnxruntime, a build folder -> finn-sim). The metadata (checkpoint dict or the
    ONNX file's) holds ``model``, ``class_names``, ``input_spec``, ``recipe`` if known, ``quant`` if quantized.
    """
    from vidconv_edge.checkpoint import load_checkpoint
    from vidconv_edge.models.loading import model_from_checkpoint

    path = Path(path)
    is_onnx = path.suffix.lower() == ".onnx"
    is_build = path.is_dir() and (path / "report.json").is_file()
    backend = backend or ("onnxruntime" if is_onnx else "finn-sim" if is_build else "torch")
    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}' (choose from {', '.join(BACKENDS)})")
    if backend == "finn-sim":
        if not is_build:
            raise UserError(f"--backend finn-sim runs a build-fpga folder (with report.json), got {path}")
        model = HwGraphModel(path)
        return model, model.meta
    if is_build:
        raise UserError(f"{path} is a build-fpga folder: evaluate it with --backend finn-sim")
    if backend == "onnxruntime":
        if not is_onnx:
            raise UserError(
                f"--backend onnxruntime runs exported ONNX files, {path} is a checkpoint: export it first "
                f"(`vidconv-edge export {path} --target qdq -o F.onnx` if quantized, --target onnx if float)"
            )
        from vidconv_edge.export.runtime import OnnxModel

        model = OnnxModel(path)
        return model.eval(), model.meta
    if is_onnx:
        raise UserError(f"{path} is an ONNX file: evaluate it with --backend onnxruntime")
    ckpt = load_checkpoint(path)
    if "quant" in ckpt:
        from vidconv_edge.quant.model import quant_model_from_checkpoint

        return quant_model_from_checkpoint(ckpt)
    return model_from_checkpoint(ckpt)


class HwGraphModel(torch.nn.Module):
    """A build-fpga folder's HW-layer graphs (FINN python execution, the ``finn-sim`` stream backend) as a model:
    pixel clips in, the accelerator's dequantised integer logits out, one clip at a time."""

    def __init__(self, build: str | os.PathLike):
        super().__init__()
        from vidconv_edge.export.onnx import read_metadata
        from vidconv_edge.stream.backends import open_backend

        self.backend = open_backend(build, "finn-sim")
        qonnx = sorted((Path(build) / "qonnx").glob("*.onnx"))
        self.meta = {**read_metadata(qonnx[0]), "model": self.backend.model_name, "class_names": self.backend.class_names}
        self.input_spec = self.backend.input_spec
        self.meta["input_spec"] = {**self.meta["input_spec"], **self.input_spec.to_dict()}
        self.num_classes = len(self.backend.class_names)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """``clips``: (B, T, 3, S, S) normalised with ``input_spec`` (i.e. pixel values)."""
        x = clips.detach().cpu().numpy()
        return torch.from_numpy(np.concatenate([self.backend.full(x[i : i + 1]) for i in range(len(x))]))
