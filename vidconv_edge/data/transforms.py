"""Clip transforms on uint8 tensors (T, 3, H, W): one set of random parameters for all frames of a clip.

Geometry (resize short side + crop) is done as one crop of the original frames followed by one
resize, the same result as MMAction2's Resize -> MultiScaleCrop -> Resize chain without the
intermediate image. Normalisation is batched and separate: ``normalize(batch_uint8, mean, std)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vidconv_edge.errors import UserError

Box = tuple[int, int, int, int]  # y0, x0, h, w in source pixels

DEFAULT_SWAP_WORDS: tuple[tuple[str, str], ...] = (
    ("left", "right"),
    ("cw", "ccw"),
    ("clockwise", "anticlockwise"),
    ("clockwise", "counterclockwise"),
)


def normalize(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float32 ``(x / 255 - mean) / std``, channel at dim -3, on batch's device."""
    if batch.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 clips, got {batch.dtype}")
    if batch.dim() < 3 or batch.shape[-3] != 3:
        raise ValueError(f"normalize expects (..., 3, H, W), got {tuple(batch.shape)}")
    m = torch.tensor(mean, dtype=torch.float32, device=batch.device).view(3, 1, 1) * 255.0
    s = torch.tensor(std, dtype=torch.float32, device=batch.device).view(3, 1, 1) * 255.0
    return (batch.float() - m) / s


def resized_crop(clip: torch.Tensor, box: Box, size: int) -> torch.Tensor:
    """Crop ``box`` of every frame and resize it to size x size (bilinear, antialiased), uint8 in and out."""
    y0, x0, h, w = box
    crop = clip[:, :, y0 : y0 + h, x0 : x0 + w]
    if (h, w) == (size, size):
        return crop.contiguous()
    out = F.interpolate(crop.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def center_box(height: int, width: int, crop: int) -> Box:
    crop_h, crop_w = min(crop, height), min(crop, width)
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def three_crop_boxes(height: int, width: int) -> list[Box]:
    """Three squares of side min(H, W) along the long side: start, centre, end (MMAction2 ThreeCrop)."""
    side = min(height, width)
    if width >= height:
        return [(0, x, side, side) for x in (0, (width - side) // 2, width - side)]
    return [(y, 0, side, side) for y in (0, (height - side) // 2, height - side)]


def multi_scale_crop_box(
    height: int,
    width: int,
    scales: Sequence[float],
    rng: np.random.Generator,
    max_wh_scale_gap: int = 1,
    random_crop: bool = False,
) -> Box:
    """MMAction2 MultiScaleCrop: crop sides from ``scales`` x the short side, corner/centre offsets."""
    base = min(height, width)
    sizes = [max(1, int(base * s)) for s in scales]
    cands = [(h, w) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= max_wh_scale_gap]
    crop_h, crop_w = cands[int(rng.integers(len(cands)))]
    crop_h, crop_w = min(crop_h, height), min(crop_w, width)
    if random_crop:
        return int(rng.integers(height - crop_h + 1)), int(rng.integers(width - crop_w + 1)), crop_h, crop_w
    hs, ws = (height - crop_h) // 4, (width - crop_w) // 4
    offsets = [(0, 0), (0, 4 * ws), (4 * hs, 0), (4 * hs, 4 * ws), (2 * hs, 2 * ws)]
    y0, x0 = offsets[int(rng.integers(len(offsets)))]
    return y0, x0, crop_h, crop_w


def scale_box(box: Box, factor: float, height: int, width: int) -> Box:
    """A box given on frames resized by ``factor``, mapped back onto the original frames."""
    y0, x0, h, w = box
    ys, xs = round(y0 / factor), round(x0 / factor)
    hs, ws = max(1, round(h / factor)), max(1, round(w / factor))
    return min(ys, height - 1), min(xs, width - 1), min(hs, height - min(ys, height - 1)), min(ws, width - min(xs, width - 1))


def flip_label(label: int | tuple[int, ...], flip_map: dict[int, int]) -> int | tuple[int, ...]:
    """The label of a horizontally flipped clip (each class of a multi-label tuple mapped)."""
    if isinstance(label, tuple):
        return tuple(sorted({flip_map.get(y, y) for y in label}))
    return flip_map.get(label, label)


def flip_map_from_names(names: Sequence[str], swaps: Sequence[tuple[str, str]] = DEFAULT_SWAP_WORDS) -> dict[int, int]:
    """Label swap for horizontal flips: classes whose names differ by left<->right (cw<->ccw, ...) words.

    'Pushing something from left to right' <-> 'Pushing something from right to left', 'rotate_cw' <-> 'rotate_ccw'.
    """
    table: dict[str, str] = {}
    for a, b in swaps:
        table.setdefault(a, b)
        table.setdefault(b, a)
    index = {n: i for i, n in enumerate(names)}
    out: dict[int, int] = {}
    for i, name in enumerate(names):
        parts = re.split(r"([A-Za-z]+)", name)
        swapped = "".join(_swap_word(p, table) for p in parts)
        if swapped != name and swapped in index:
            out[i] = index[swapped]
    return out


def _swap_word(word: str, table: dict[str, str]) -> str:
    low = word.lower()
    if low not in table:
        return word
    new = table[low]
    return new.capitalize() if word[:1].isupper() else new


class RandAugment:
    """RandAugment on a uint8 clip (T, 3, H, W): ``num_ops`` random ops at ``magnitude`` (0..10), shared by all frames."""

    OPS = (
        "identity", "autocontrast", "brightness", "contrast", "color", "sharpness",
        "posterize", "solarize", "rotate", "shear_x", "shear_y", "translate_x", "translate_y",
    )  # fmt: skip

    def __init__(self, num_ops: int = 2, magnitude: float = 9.0, fill: int = 128):
        if num_ops < 0 or not 0 <= magnitude <= 10:
            raise UserError(f"RandAugment needs num_ops >= 0 and magnitude in 0..10, got {num_ops}, {magnitude}")
        self.num_ops, self.magnitude, self.fill = num_ops, float(magnitude), fill

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        x = clip.float()
        for k in rng.integers(len(self.OPS), size=self.num_ops):
            sign = 1.0 if rng.random() < 0.5 else -1.0
            x = self.apply(x, self.OPS[int(k)], self.magnitude / 10.0, sign)
        return x.round_().clamp_(0, 255).to(torch.uint8)

    def apply(self, x: torch.Tensor, op: str, m: float, sign: float = 1.0) -> torch.Tensor:
        """One op on a float clip in 0..255 at relative magnitude ``m`` in 0..1."""
        if op == "identity":
            return x
        if op == "autocontrast":
            lo = x.amin(dim=(0, 2, 3), keepdim=True)
            hi = x.amax(dim=(0, 2, 3), keepdim=True)
            scale = torch.where(hi > lo, 255.0 / (hi - lo).clamp_min(1e-6), torch.ones_like(hi))
            return torch.where(hi > lo, (x - lo) * scale, x)
        if op == "brightness":
            return (x * (1 + sign * 0.9 * m)).clamp(0, 255)
        if op == "contrast":
            mean = _gray(x).mean()
            return _blend(x, mean, 1 + sign * 0.9 * m)
        if op == "color":
            return _blend(x, _gray(x), 1 + sign * 0.9 * m)
        if op == "sharpness":
            kernel = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13.0
            blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel.expand(3, 1, 3, 3).to(x), groups=3)
            return _blend(x, blurred, 1 + sign * 0.9 * m)
        if op == "posterize":
            bits = 8 - int(round(4 * m))
            step = 2 ** (8 - bits)
            return torch.floor(x.round() / step) * step
        if op == "solarize":
            thr = 256.0 - 256.0 * m
            return torch.where(x >= thr, 255.0 - x, x)
        h, w = x.shape[-2:]
        if op == "rotate":
            a = math.radians(sign * 30.0 * m)
            theta = [[math.cos(a), -math.sin(a) * h / w, 0.0], [math.sin(a) * w / h, math.cos(a), 0.0]]
        elif op == "shear_x":
            theta = [[1.0, sign * 0.3 * m * h / w, 0.0], [0.0, 1.0, 0.0]]
        elif op == "shear_y":
            theta = [[1.0, 0.0, 0.0], [sign * 0.3 * m * w / h, 1.0, 0.0]]
        elif op == "translate_x":
            theta = [[1.0, 0.0, sign * 0.45 * m * 2], [0.0, 1.0, 0.0]]
        elif op == "translate_y":
            theta = [[1.0, 0.0, 0.0], [0.0, 1.0, sign * 0.45 * m * 2]]
        else:
            raise ValueError(f"unknown RandAugment op {op}")
        return _affine(x, torch.tensor(theta, dtype=x.dtype), self.fill)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: float) -> torch.Tensor:
    return (other + factor * (x - other)).clamp(0, 255)


def _affine(x: torch.Tensor, theta: torch.Tensor, fill: float) -> torch.Tensor:
    """Sample every frame through the same affine map (normalised coords); outside pixels get ``fill``."""
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


@dataclass
class TransformOptions:
    """Options of the clip pipeline (MMAction2 defaults)."""

    short_side: int | None = None  # frames are resized to this short side first; default size * 8 / 7
    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
    max_wh_scale_gap: int = 1
    random_crop: bool = False
    flip: bool = True
    flip_map: dict[int, int] = field(default_factory=dict)
    randaugment: tuple[int, float] | None = None  # (num_ops, magnitude)
    crops: int = 1  # eval views in space: 1 (centre crop) or 3 (three crops of the short side)


class ClipTransform:
    """uint8 clip (T, 3, H, W) + label -> uint8 (T, 3, S, S) (or (crops, T, 3, S, S) at eval) + label."""

    def __init__(self, size: int, train: bool, options: TransformOptions | None = None):
        self.size, self.train = size, train
        self.opt = options or TransformOptions()
        if self.opt.crops not in (1, 3):
            raise UserError(f"spatial crops per clip must be 1 or 3, got {self.opt.crops}")
        if not self.opt.scales or min(self.opt.scales) <= 0 or max(self.opt.scales) > 1:
            raise UserError(f"crop scales must be in (0, 1], got {self.opt.scales}")
        self.short_side = self.opt.short_side or round(size * 8 / 7)
        self.randaugment = RandAugment(*self.opt.randaugment) if (train and self.opt.randaugment) else None

    def __call__(self, clip: torch.Tensor, label: int, rng: np.random.Generator | None = None) -> tuple[torch.Tensor, int]:
        if clip.dtype != torch.uint8 or clip.dim() != 4 or clip.shape[1] != 3:
            raise ValueError(f"expected a uint8 clip (T, 3, H, W), got {clip.dtype} {tuple(clip.shape)}")
        h, w = clip.shape[-2:]
        if not self.train:
            if self.opt.crops == 3:
                views = [resized_crop(clip, b, self.size) for b in three_crop_boxes(h, w)]
                return torch.stack(views), label
            f = self.short_side / min(h, w)
            box = scale_box(center_box(round(h * f), round(w * f), self.size), f, h, w)
            return resized_crop(clip, box, self.size), label
        rng = rng if rng is not None else np.random.default_rng()
        f = self.short_side / min(h, w)
        rh, rw = round(h * f), round(w * f)
        box = multi_scale_crop_box(rh, rw, self.opt.scales, rng, self.opt.max_wh_scale_gap, self.opt.random_crop)
        out = resized_crop(clip, scale_box(box, f, h, w), self.size)
        if self.opt.flip and rng.random() < 0.5:
            out = out.flip(-1)
            label = flip_label(label, self.opt.flip_map)
        if self.randaugment is not None:
            out = self.randaugment(out, rng)
        return out, label
