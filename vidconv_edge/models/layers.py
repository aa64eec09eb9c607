"""Small building blocks shared by the model families."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (timm's ``LayerNorm2d``, same parameter names)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at eval time)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def make_norm(kind: str, dim: int) -> nn.Module:
    if kind == "ln":
        return LayerNorm2d(dim, eps=1e-6)
    if kind == "bn":
        return nn.BatchNorm2d(dim)
    raise ValueError(f"unknown norm '{kind}' (ln or bn)")


def make_act(kind: str) -> nn.Module:
    if kind == "gelu":
        return nn.GELU()
    if kind == "relu":
        return nn.ReLU()
    raise ValueError(f"unknown activation '{kind}' (gelu or relu)")


def frames_to_collage(x: torch.Tensor, layout: tuple[int, int]) -> torch.Tensor:
    """(B*L, C, H, W) per-frame maps -> (B, C, h*H, w*W) collage; frame i sits at tile (i // w, i % w)."""
    h, w = layout
    n, c, th, tw = x.shape
    x = x.reshape(n // (h * w), h, w, c, th, tw).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(n // (h * w), c, h * th, w * tw)


def collage_to_frames(x: torch.Tensor, layout: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`frames_to_collage`."""
    h, w = layout
    b, c, hh, ww = x.shape
    th, tw = hh // h, ww // w
    x = x.reshape(b, c, h, th, w, tw).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * h * w, c, th, tw)


def layout_for_frames(frames: int) -> tuple[int, int]:
    """The most square h x w grid with h*w == frames and h <= w (9 -> 3x3, 8 -> 2x4)."""
    h = int(frames**0.5)
    while frames % h:
        h -= 1
    return h, frames // h
