"""What every video model here exposes: clip input (B, T, 3, H, W), its input spec, and its config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn

from vidconv_edge.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class InputSpec:
    """How a clip must look before it enters the model (after normalisation)."""

    frames: int
    size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    layout: tuple[int, int] | None = None  # (h, w) collage grid, VidConv only

    def to_dict(self) -> dict:
        return asdict(self)


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
