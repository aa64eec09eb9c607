"""PyTorch backend: a vidconv-edge checkpoint (or an in-memory model) on the CPU."""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch

from vidconv_edge.models.base import InputSpec, VideoClassifier
from vidconv_edge.spec import recipe_frame_rate


class TorchBackend:
    """Runs ``forward_early`` / ``forward_later`` / ``forward`` of a streaming-capable model: a float model traced
    and frozen with TorchScript (:func:`freeze_parts`; the weights at construction are the ones used), a quantized
    (Brevitas) model as it is. A model without the early/later split (SEVNet) streams ``whole_clip``: its
    ``forward`` on the last L frames for every output."""

    name = "torch"
    # the model runs in channels_last memory format (oneDNN's native layout: no reorder around every
    # conv; ~8% less time per streamed frame at batch 1), so its maps and the collage are NHWC arrays
    channels_last = True
    whole_clip = False

    def __init__(self, model: VideoClassifier, class_names: list[str] | None = None, frame_rate: float | None = None):
        self.whole_clip = not getattr(model, "supports_streaming", False)
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.model_name = model.name
        spec = model.input_spec
        layout = tuple(spec.layout) if spec.layout is not None else None
        self.input_spec = InputSpec(spec.frames, spec.size, tuple(spec.mean), tuple(spec.std), layout)
        self.class_names = list(class_names) if class_names else [str(i) for i in range(model.num_classes)]
        self.frame_rate = frame_rate
        from vidconv_edge.quant.model import is_quant_model

        # Brevitas models run eagerly (their quantizers do not trace); float models are frozen TorchScript
        self.net = self.model if is_quant_model(self.model) or self.whole_clip else freeze_parts(self.model)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> "TorchBackend":
        from vidconv_edge.quant.model import any_model_from_checkpoint

        model, ckpt = any_model_from_checkpoint(path)  # float or quantized
        return cls(model, ckpt.get("class_names"), recipe_frame_rate(ckpt.get("recipe")))

    @torch.inference_mode()
    def early(self, frames: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(frames).contiguous(memory_format=torch.channels_last)
        return self.net.forward_early(x).permute(0, 2, 3, 1).numpy()

    @torch.inference_mode()
    def later(self, collage: np.ndarray) -> np.ndarray:
        return self.net.forward_later(torch.from_numpy(collage).permute(0, 3, 1, 2)).numpy()

    @torch.inference_mode()
    def full(self, clip: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(clip)
        self.model.check_clip(x)  # the traced forward has no shape check
        return self.net(x).numpy()


def freeze_parts(model: VideoClassifier) -> torch.jit.ScriptModule:
    """``model`` traced and frozen with its three entry points: ``forward``, ``forward_early``, ``forward_later``.

    At batch 1 a small early-net's time goes largely to per-op overhead (Python module calls); TorchScript runs
    the frozen graphs without it (and with BatchNorm folded into the conv before it). vic_edge 9x96², 1 thread:
    early-net 0.27 -> 0.18 ms per frame, later-net 1.22 -> 1.05 ms, whole clip 2.6 -> 2.2 ms (BN folding alone
    gains little; ``torch.export`` graph modules run slower than eager). The whole model is traced as one graph
    of its own, so ``full`` (``--recompute``) stays an independent whole-clip reference for the streamed parts.
    ``forward_early`` is traced on one frame; its graph (no shape-dependent op) takes any number of frames.
    """
    spec = model.input_spec
    frames = torch.zeros(spec.frames, 3, spec.size, spec.size).contiguous(memory_format=torch.channels_last)
    c, th, tw = model.early_shape()
    h, w = spec.layout
    collage = torch.zeros(1, c, h * th, w * tw).contiguous(memory_format=torch.channels_last)
    inputs = {"forward": frames[None], "forward_early": frames[:1], "forward_later": collage}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # check_clip's shape test
        # torch.jit is deprecated for torch.compile, which would compile C++ at every start; torch is pinned
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=DeprecationWarning)
        traced = torch.jit.trace_module(model, inputs, check_trace=False)
        return torch.jit.freeze(traced, preserved_attrs=["forward_early", "forward_later"])
