"""An exported ONNX file (float or QDQ int8, ``full`` part) as a model: ONNX Runtime on CPU behind the
``VideoClassifier`` interface, so evaluation and prediction take it like a checkpoint's model.

Only files written by ``vidconv-edge export`` are taken: their metadata gives the class names, the input
spec (a QDQ export of a quantized model takes pixel values 0..255) and the bit widths.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from vidconv_edge.errors import UserError
from vidconv_edge.export.onnx import read_metadata
from vidconv_edge.models.base import InputSpec, VideoClassifier

def eval_metadata(path: str | os.PathLike) -> dict:
    """The metadata of an ONNX file that ORT can evaluate as a whole clip classifier; UserError otherwise."""
    meta = read_metadata(path)
    if meta.get("format") == "qonnx":
        raise UserError(
            f"{path} is a QONNX export (FINN's Quant nodes), which ONNX Runtime does not run: "
            "evaluate the quantized checkpoint, or its QDQ export (`vidconv-edge export QCKPT --target qdq`)"
        )
    if meta.get("part", "full") != "full":
        raise UserError(f"{path} holds the '{meta['part']}' part; evaluation needs the whole model (--part full)")
    if "quant" in meta:
        from vidconv_edge.quant.bits import QuantBits

        QuantBits.from_dict(meta["quant"])  # bit widths this version supports
    return meta


class OnnxModel(VideoClassifier):
    """A ``full`` ONNX export run by ONNX Runtime (CPU, batch 1 per call): clips (B, T, 3, S, S) -> logits."""

    def __init__(self, path: str | os.PathLike, threads: int = 0):
        super().__init__()
        from vidconv_edge.export.qdq import ort_session

        self.path = Path(path)
        self.meta = eval_metadata(self.path)
        s = self.meta["input_spec"]
        layout = tuple(s["layout"]) if s.get("layout") else None
        self.input_spec = InputSpec(int(s["frames"]), int(s["size"]), tuple(s["mean"]), tuple(s["std"]), layout)
        self.name = self.meta["model"]
        self.num_classes = len(self.meta["class_names"])
        self.input_is_uint8 = bool(self.meta.get("input_is_uint8", False))
        self.session = ort_session(self.path, threads=threads)
        inp = self.session.get_inputs()[0]
        expect = [1, self.input_spec.frames, 3, self.input_spec.size, self.input_spec.size]
        if list(inp.shape) != expect:
            raise UserError(f"{path}: input '{inp.name}' has shape {inp.shape}, its metadata says {expect}")
        self.input_name = inp.name

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        self.check_clip(clip)
        x = clip.detach().cpu().numpy().astype(np.float32)
        out = [self.session.run(None, {self.input_name: x[i : i + 1]})[0] for i in range(len(x))]
        return torch.from_numpy(np.concatenate(out)).to(clip.device)

    def config_dict(self) -> dict:
        return dict(self.meta["config"])
