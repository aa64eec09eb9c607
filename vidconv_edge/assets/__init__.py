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
