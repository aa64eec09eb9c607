"""ImageNet ConvNeXt weights (timm or official layout) into a VidConv backbone, by name mapping."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vidconv_edge.errors import UserError
from vidconv_edge.models.vidconv import VidConv


@dataclass
class LoadReport:
    """What a weight load did: keys loaded, model keys left at init, file keys not used."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"loaded {len(self.loaded)} tensors; {len(self.missing)} missing (left at init), "
            f"{len(self.unexpected)} unused, {len(self.mismatched)} shape-mismatched"
        )


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from .pth/.pt/.bin (optionally wrapped in 'model'/'state_dict') or .safetensors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"cannot read weights {path}: {type(e).__name__}: {e}") from e
    for key in ("model", "state_dict", "model_state"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"{path} holds no state dict of tensors")
    return sd


_OFFICIAL_RULES = [
    (r"^downsample_layers\.0\.0\.", "stem.0."),
    (r"^downsample_layers\.0\.1\.", "stem.1."),
    (r"^downsample_layers\.(\d+)\.(\d+)\.", r"stages.\1.downsample.\2."),
    (r"^stages\.(\d+)\.(\d+)\.", r"stages.\1.blocks.\2."),
    (r"\.dwconv\.", ".conv_dw."),
    (r"\.pwconv(\d)\.", r".mlp.fc\1."),
    (r"^norm\.", "head.norm."),
    (r"^head\.(weight|bias)$", r"head.fc.\1"),
]


def to_timm_names(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official ConvNeXt key names -> timm names (timm-layout dicts pass through)."""
    if not any(k.startswith("downsample_layers.") for k in sd):
        return dict(sd)
    out = {}
    for k, v in sd.items():
        for pat, rep in _OFFICIAL_RULES:
            k = re.sub(pat, rep, k)
        out[k] = v
    return out


def _target_name(model: VidConv, key: str) -> str | None:
    """timm ConvNeXt key -> our key (None: not part of the backbone we load)."""
    if key.startswith("head.fc.") or key.startswith("norm_pre."):
        return None
    if key.startswith("head.norm."):
        return ("final_norm." if model.neck is not None else "head.norm.") + key.split(".")[-1]
    return key


def load_imagenet_convnext(model: VidConv, path_or_sd: str | os.PathLike | dict) -> LoadReport:
    """Load ConvNeXt ImageNet weights into ``model``'s stem, stages and final norm; report the rest.

    The temporal branches, neck and classifier stay at their initialisation (the paper trains them
    from scratch); a tensor whose shape differs (e.g. another width) is reported, not loaded.
    """
    if not isinstance(model, VidConv):
        raise UserError("ImageNet ConvNeXt weights load only into VidConv models")
    if model.cfg.norm != "ln":
        raise UserError(f"model '{model.name}' uses BatchNorm; ConvNeXt weights need the LayerNorm variants")
    sd = read_state_dict(path_or_sd) if not isinstance(path_or_sd, dict) else path_or_sd
    sd = to_timm_names(sd)
    own = model.state_dict()
    report = LoadReport()
    new_sd = {}
    for key, value in sd.items():
        target = _target_name(model, key)
        if target is None or target not in own:
            report.unexpected.append(key)
            continue
        if value.dim() == 2 and own[target].dim() == 4:  # Linear -> 1x1 conv
            value = value[:, :, None, None]
        if value.shape != own[target].shape:
            report.mismatched.append(f"{key}: {tuple(value.shape)} vs {tuple(own[target].shape)}")
            continue
        new_sd[target] = value
        report.loaded.append(target)
    if not report.loaded:
        raise UserError("no ConvNeXt weights matched this model: is it a ConvNeXt checkpoint?")
    model.load_state_dict(new_sd, strict=False)
    report.missing = sorted(set(own) - set(new_sd))
    return report
