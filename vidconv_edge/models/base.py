"""What every video model here exposes: clip input (B, T, 3, H, W), its input spec, and its config."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from vidconv_edge.errors import UserError
from vidconv_edge.spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec  # noqa: F401  (re-exported)


@dataclass
class ModelMeta:
    """Name, config and class names that travel with a model into checkpoints and ONNX files."""

    name: str
    config: dict = field(default_factory=dict)
    class_names: list[str] | None = None


class VideoClassifier(nn.Module):
    """Base class: ``forward(clip)`` with clip (B, T, 3, H, W), normalised float."""

    input_spec: InputSpec
    num_classes: int
    supports_streaming: bool = False

    def check_clip(self, x: torch.Tensor) -> None:
        spec = self.input_spec
        expect = (spec.frames, 3, spec.size, spec.size)
        if x.dim() != 5 or tuple(x.shape[1:]) != expect:
            raise UserError(
                f"expected a clip of shape (B, {spec.frames}, 3, {spec.size}, {spec.size}), got {tuple(x.shape)}"
            )

    def stage_parts(self) -> dict[str, list[str]]:
        """Named parts in order -> the submodule paths they consist of (per-stage params/MACs table)."""
        return {name: [name] for name, _ in self.named_children()}
