"""Checkpoints: one dict with the model name, its config, class names, input spec and weights.

Training adds its own state (optimizer, scheduler, scaler, RNG, epoch) under further keys.
Written atomically; loaded with ``weights_only=True``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from vidconv_edge import __version__
from vidconv_edge.errors import UserError
from vidconv_edge.io import atomic_path
from vidconv_edge.models import VideoClassifier, create_model

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


def model_from_checkpoint(ckpt: dict | str | os.PathLike, **overrides) -> tuple[VideoClassifier, dict]:
    """Rebuild the model of a checkpoint and load its weights; returns (model in eval mode, checkpoint)."""
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    if "quant" in ckpt:
        raise UserError(
            f"this is a quantized checkpoint of '{ckpt['model']}'; a float one is needed here "
            "(quantized checkpoints go to `export --target qonnx|qdq`, `eval`, `stream`)"
        )
    model = create_model(ckpt["model"], **{**ckpt["config"], **overrides})
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise UserError(f"checkpoint weights do not match model '{ckpt['model']}': {str(e).splitlines()[0]}") from e
    return model.eval(), ckpt


def load_model(source: str | os.PathLike | None = None, **overrides) -> tuple[VideoClassifier, list[str], str]:
    """A model from a checkpoint path, a registered model name (fresh weights), or None (bundled default).

    Returns (model in eval mode, class names, a description of where it came from).
    """
    from vidconv_edge.assets import DEFAULT_CHECKPOINT

    if source is None:
        if DEFAULT_CHECKPOINT.is_file():
            source = DEFAULT_CHECKPOINT
        else:
            source = "vic_edge"
    path = Path(source)
    looks_like_file = path.suffix in (".pt", ".pth", ".ckpt") or os.sep in str(source)
    if path.is_file() or looks_like_file:
        model, ckpt = model_from_checkpoint(path, **overrides)
        return model, list(ckpt["class_names"]), f"checkpoint {path}"
    model = create_model(str(source), **overrides).eval()
    return model, [str(i) for i in range(model.num_classes)], f"model {source} (untrained weights)"
