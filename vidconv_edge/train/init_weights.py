"""``--pretrained FILE``: start from a vidconv-edge checkpoint of the same model or ImageNet ConvNeXt weights."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from vidconv_edge.checkpoint import FORMAT
from vidconv_edge.errors import UserError
from vidconv_edge.models import VideoClassifier


def load_pretrained(model: VideoClassifier, path: str | os.PathLike) -> str:
    """Load initial weights into ``model``; return a one-line report.

    A vidconv-edge checkpoint must be of the same model (else UserError); tensors whose shape differs
    (the classifier when the class count changes, e.g. K400 -> SSv2) are skipped and reported.
    Any other file is read as ImageNet ConvNeXt weights (VidConv models only).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"pretrained weights not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or not a torch file; safetensors are handled by the ImageNet loader
        ckpt = None
        if path.suffix != ".safetensors":
            raise UserError(f"cannot read pretrained weights {path}: {type(e).__name__}") from e
    if isinstance(ckpt, dict) and ckpt.get("format") == FORMAT:
        return _load_own(model, ckpt, path)
    if not getattr(model, "supports_streaming", False):
        raise UserError(f"{path} is not a vidconv-edge checkpoint; ImageNet ConvNeXt weights load only into VidConv models")
    from vidconv_edge.models.pretrained import load_imagenet_convnext

    report = load_imagenet_convnext(model, path)
    return f"ImageNet ConvNeXt weights from {path}: {report.summary()}"


def _load_own(model: VideoClassifier, ckpt: dict, path: Path) -> str:
    if ckpt.get("model") != model.name:
        raise UserError(f"{path} is a checkpoint of model '{ckpt.get('model')}', not '{model.name}'")
    own = model.state_dict()
    use, skipped, unused = {}, [], []
    for key, value in ckpt["state_dict"].items():
        if key not in own:
            unused.append(key)
        elif own[key].shape != value.shape:
            skipped.append(f"{key} {tuple(value.shape)} -> {tuple(own[key].shape)}")
        else:
            use[key] = value
    result = model.load_state_dict(use, strict=False)
    missing = sorted(set(result.missing_keys) - {s.split(" ")[0] for s in skipped})
    text = f"checkpoint {path}: loaded {len(use)} tensors"
    if skipped:
        text += f"; skipped {len(skipped)} of another shape ({'; '.join(skipped)})"
    if missing:
        text += f"; {len(missing)} missing (left at init)"
    if unused:
        text += f"; {len(unused)} unused"
    return text
