"""Files shipped inside the package: the bundled models ``vic_edge.pt`` (the default) and ``sevnet_edge.pt``,
both trained on camera motion over real footage (see ``vidconv_edge.apps.default_model``), their QAT-quantized
forms at the Pynq-Z2's precision (``vic_edge_w8a4.pt``, ``sevnet_edge_w8a4.pt``), and a sample video."""

from __future__ import annotations

import os
from pathlib import Path

from vidconv_edge.errors import UserError

ASSETS = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = ASSETS / "vic_edge.pt"
SEVNET_CHECKPOINT = ASSETS / "sevnet_edge.pt"


def default_checkpoint() -> Path:
    """The bundled vic_edge checkpoint (7 camera-motion classes); UserError if this install lacks it."""
    if not DEFAULT_CHECKPOINT.is_file():
        raise UserError(
            f"no checkpoint given and the bundled default model is missing ({DEFAULT_CHECKPOINT}); "
            "pass a checkpoint or rebuild it with: python -m vidconv_edge.apps.default_model"
        )
    return DEFAULT_CHECKPOINT


def bundled_quantized(checkpoint: str | os.PathLike, precision: str) -> Path | None:
    """The bundled quantized (QAT) form of a bundled float ``checkpoint`` at ``precision`` (e.g. ``W8A4``), if any."""
    path = Path(checkpoint).resolve()
    if path not in (DEFAULT_CHECKPOINT, SEVNET_CHECKPOINT):
        return None
    quantized = ASSETS / f"{path.stem}_{precision.lower()}.pt"
    return quantized if quantized.is_file() else None


SAMPLE_VIDEO = ASSETS / "sample.mp4"


def sample_video() -> Path:
    """The bundled sample video (real footage under known camera motions; scripts/make_sample_video.py)."""
    if not SAMPLE_VIDEO.is_file():
        raise UserError(f"the bundled sample video is missing ({SAMPLE_VIDEO}); rebuild it: python scripts/make_sample_video.py")
    return SAMPLE_VIDEO
