"""Models rebuilt from checkpoints, registered names or the bundled default."""

from __future__ import annotations

import os
from pathlib import Path

from vidconv_edge.checkpoint import load_checkpoint
from vidconv_edge.errors import UserError
from vidconv_edge.models import VideoClassifier, create_model


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
