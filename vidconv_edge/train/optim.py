"""Optimizer with parameter groups and the per-iteration warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from vidconv_edge.train.config import OptimConfig

NO_DECAY_NAMES = ("alpha", "gamma")


def is_new_parameter(model: nn.Module, name: str) -> bool:
    """Parameters not in a pretrained image backbone: VidConv's temporal branches, neck and head; any classifier."""
    if getattr(model, "supports_streaming", False):  # VidConv
        return ".temporal." in f".{name}" or name.startswith(("neck.", "head."))
    return name.startswith(("fc.", "head."))


def no_weight_decay(name: str, param: nn.Parameter) -> bool:
    """Norm weights, biases and per-channel scales (VidConv alpha, layer-scale gamma) get no weight decay."""
    return param.ndim <= 1 or name.rsplit(".", 1)[-1] in NO_DECAY_NAMES


def param_groups(model: nn.Module, cfg: OptimConfig, lr: float) -> list[dict]:
    """Up to four groups: (backbone | new) x (decay | no decay); the backbone's lr is scaled by l_b."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = (is_new_parameter(model, name), no_weight_decay(name, p))
        groups.setdefault(key, []).append(p)
    out = []
    for (new, no_wd), params in sorted(groups.items()):
        out.append(
            {
                "params": params,
                "lr": lr * (1.0 if new else cfg.backbone_lr_factor),
                "weight_decay": 0.0 if no_wd else cfg.weight_decay,
                "name": f"{'new' if new else 'backbone'}{'/no_wd' if no_wd else ''}",
            }
        )
    return out


def scaled_lr(cfg: OptimConfig, world_size: int, effective_batch: int) -> float:
    """The recipe's lr after its scaling rule: ``world_size`` (x processes) or ``batch`` (linear in the batch)."""
    if cfg.lr_scaling == "world_size":
        return cfg.lr * world_size
    if cfg.lr_scaling == "batch":
        return cfg.lr * effective_batch / cfg.lr_base_batch
    return cfg.lr


def build_optimizer(model: nn.Module, cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    """AdamW or SGD (momentum) over :func:`param_groups` at base lr ``lr`` (see :func:`scaled_lr`)."""
    groups = param_groups(model, cfg, lr)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=lr, betas=cfg.betas)


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Multiplier of the base lr at optimizer step ``step``: linear warm-up, then cosine down to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / decay, 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int, epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration schedule (call ``step()`` after every optimizer step)."""
    total = steps_per_epoch * epochs
    warmup = min(round(cfg.warmup_epochs * steps_per_epoch), total)
    base = max(g["lr"] for g in optimizer.param_groups)
    min_ratio = cfg.min_lr / base
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total, warmup, min_ratio))
