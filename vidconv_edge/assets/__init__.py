"""Files shipped with the package: the default checkpoint and a sample video."""

from __future__ import annotations

from pathlib import Path

from vidconv_edge.errors import UserError

ASSETS = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = ASSETS / "vic_edge.pt"
SAMPLE_VIDEO = ASSETS / "sample.mp4"


def default_checkpoint() -> Path:
    """The bundled trained ``vic_edge`` checkpoint."""
    if not DEFAULT_CHECKPOINT.is_file():
        raise UserError(f"the bundled default checkpoint is missing ({DEFAULT_CHECKPOINT}); reinstall the package")
    return DEFAULT_CHECKPOINT


def sample_video() -> Path:
    """The bundled sample video."""
    if not SAMPLE_VIDEO.is_file():
        raise UserError(f"the bundled sample video is missing ({SAMPLE_VIDEO}); reinstall the package")
    return SAMPLE_VIDEO
