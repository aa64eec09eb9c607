"""The input spec of a model, torch-free (the board-side streaming runtime imports it without torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

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


def recipe_frame_rate(recipe: dict | None) -> float | None:
    """The frame rate of the videos a model was trained on, as its recipe records it (None if unknown)."""
    rate = ((recipe or {}).get("data") or {}).get("frame_rate")
    return float(rate) if rate else None
