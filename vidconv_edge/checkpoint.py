"""Checkpoints: one dict with the model name, its config, class names, input spec and weights.

The file format only; rebuilding a model from one is ``vidconv_edge.models.loading``.

Training adds its own state (optimizer, scheduler, scaler, RNG, epoch) under further keys.
Written atomically; loaded with ``weights_only=True``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from vidconv_edge import __version__
from vidconv_edge.errors import UserError
from vidconv_edge.io import atomic_path

if TYPE_CHECKING:  # type-only: the base layer imports no package above it at run time
    from vidconv_edge.models import VideoClassifier

FORMAT = "vidconv-edge/1"


def model_metadata(model: VideoClassifier, class_names: list[str] | None = None) -> dict:
    """Everything needed to rebuild ``model`` and to feed it: name, config, classes, input spec."""
    names = list(class_names) if class_names else [str(i) for i in range(model.num_classes)]
    if len(names) != model.num_classes:
        raise UserError(f"{len(names)} class names given for a model with {model.num_classes} classes")
    return {
        "format": FORMAT,
        "version": __version__,
        "model": model.name,
        "config": model.config_dict(),
        "class_names": names,
        "input_spec": model.input_spec.to_dict(),
    }


def save_checkpoint(path: str | os.PathLike, model: VideoClassifier, class_names: list[str] | None = None, **extra) -> Path:
    """Save weights + metadata (+ any extra training state) atomically."""
    payload = model_metadata(model, class_names)
    payload["state_dict"] = model.state_dict()
    payload.update(extra)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint file; a clear UserError if it is missing, corrupt or not ours."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt files
        raise UserError(f"cannot read checkpoint {path}: not a valid PyTorch file ({type(e).__name__})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path} is not a vidconv-edge checkpoint (no '{FORMAT}' format tag)")
    return ckpt
