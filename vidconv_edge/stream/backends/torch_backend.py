"""PyTorch backend: a vidconv-edge checkpoint (or an in-memory model) on the CPU."""

from __future__ import annotations

import os

import numpy as np
import torch

from vidconv_edge.errors import UserError
from vidconv_edge.models.base import InputSpec, VideoClassifier


class TorchBackend:
    """Runs ``forward_early`` / ``forward_later`` / ``forward`` of a streaming-capable model."""

    name = "torch"
    # the model runs in channels_last memory format (oneDNN's native layout: no reorder around every
    # conv; ~8% less time per streamed frame at batch 1), so its maps and the collage are NHWC arrays
    channels_last = True

    def __init__(self, model: VideoClassifier, class_names: list[str] | None = None):
        if not getattr(model, "supports_streaming", False):
            raise UserError(
                f"model '{model.name}' cannot stream: it has no early-net/later-net split (only VidConv models do)"
            )
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.model_name = model.name
        spec = model.input_spec
        self.input_spec = InputSpec(spec.frames, spec.size, tuple(spec.mean), tuple(spec.std), tuple(spec.layout))
        self.class_names = list(class_names) if class_names else [str(i) for i in range(model.num_classes)]

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> "TorchBackend":
        from vidconv_edge.checkpoint import model_from_checkpoint

        model, ckpt = model_from_checkpoint(path)
        return cls(model, ckpt.get("class_names"))

    @torch.inference_mode()
    def early(self, frames: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(frames).contiguous(memory_format=torch.channels_last)
        return self.model.forward_early(x).permute(0, 2, 3, 1).numpy()

    @torch.inference_mode()
    def later(self, collage: np.ndarray) -> np.ndarray:
        return self.model.forward_later(torch.from_numpy(collage).permute(0, 3, 1, 2)).numpy()

    @torch.inference_mode()
    def full(self, clip: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(clip)).numpy()
