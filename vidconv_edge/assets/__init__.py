"""Files shipped inside the package: the default model ``vic_edge.pt`` (see ``vidconv_edge.train.default_model``)."""

from __future__ import annotations

from pathlib import Path

from vidconv_edge.errors import UserError

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "vic_edge.pt"


def default_checkpoint() -> Path:
    """The bundled vic_edge checkpoint (10 synthetic motion classes); UserError if this install lacks it."""
    if not DEFAULT_CHECKPOINT.is_file():
        raise UserError(
            f"no checkpoint given and the bundled default model is missing ({DEFAULT_CHECKPOINT}); "
            "pass a checkpoint or rebuild it with: python -m vidconv_edge.train.default_model"
        )
    return DEFAULT_CHECKPOINT


SAMPLE_VIDEO = Path(__file__).resolve().parent / "sample.mp4"


def sample_video() -> Path:
    """The bundled sample video (90 frames, 96x96, five synthetic motions; scripts/make_sample_video.py)."""
    if not SAMPLE_VIDEO.is_file():
        raise UserError(f"the bundled sample video is missing ({SAMPLE_VIDEO}); rebuild it: python scripts/make_sample_video.py")
    return SAMPLE_VIDEO
