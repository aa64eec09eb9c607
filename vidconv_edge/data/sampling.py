"""Which frame indices make a clip: the VidConv recipe (strided clips) and TSN segments (SEVNet).

Every sampler returns an int64 array (num_clips, clip_len) of indices in ``[0, num_frames)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidconv_edge.errors import UserError

SAMPLINGS = ("vidconv", "tsn")


def fit_stride(num_frames: int, clip_len: int, stride: float) -> float:
    """The stride itself if the clip fits, else the largest one that fits: (N - 1) / (L - 1)."""
    if clip_len <= 1:
        return float(stride)
    return float(min(stride, (num_frames - 1) / (clip_len - 1)))


def strided_clip(num_frames: int, clip_len: int, stride: float, start: float) -> np.ndarray:
    """``clip_len`` indices ``start + k * stride`` (rounded); past the end repeats the last frame."""
    if num_frames < clip_len:  # too short even at stride 1: every frame, then the last one repeated
        return np.minimum(np.arange(clip_len), num_frames - 1).astype(np.int64)
    idx = np.floor(start + stride * np.arange(clip_len) + 0.5).astype(np.int64)  # round half up
    return np.clip(idx, 0, num_frames - 1)


def vidconv_train(num_frames: int, clip_len: int, stride_range: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One clip at a stride drawn uniformly from ``stride_range`` (inclusive), random start."""
    lo, hi = stride_range
    s = fit_stride(num_frames, clip_len, int(rng.integers(lo, hi + 1)))
    span = s * (clip_len - 1)
    start = rng.uniform(0, max(num_frames - 1 - span, 0))
    return strided_clip(num_frames, clip_len, s, start)[None]


def vidconv_test(num_frames: int, clip_len: int, stride: float, num_clips: int = 1) -> np.ndarray:
    """``num_clips`` clips at a fixed stride, their starts evenly spread and centred (MMAction2 test mode)."""
    s = fit_stride(num_frames, clip_len, stride)
    room = max(num_frames - 1 - s * (clip_len - 1), 0.0)
    starts = (np.arange(num_clips) + 0.5) * room / num_clips
    return np.stack([strided_clip(num_frames, clip_len, s, st) for st in starts])


def tsn_train(num_frames: int, clip_len: int, rng: np.random.Generator) -> np.ndarray:
    """TSN: ``clip_len`` equal segments, one random frame in each."""
    seg = num_frames / clip_len
    idx = np.floor((np.arange(clip_len) + rng.uniform(0, 1, size=clip_len)) * seg).astype(np.int64)
    return np.clip(idx, 0, num_frames - 1)[None]


def tsn_test(num_frames: int, clip_len: int, num_clips: int = 1) -> np.ndarray:
    """TSN test: the middle frame of each segment; more clips shift the offset within the segments."""
    seg = num_frames / clip_len
    offsets = (np.arange(num_clips) + 0.5) / num_clips
    idx = np.floor((np.arange(clip_len)[None] + offsets[:, None]) * seg).astype(np.int64)
    return np.clip(idx, 0, num_frames - 1)


@dataclass(frozen=True)
class FrameSampler:
    """The sampling recipe of a dataset: ``sample(num_frames, rng)`` -> (clips, clip_len) indices."""

    clip_len: int
    train: bool
    method: str = "vidconv"
    stride_range: tuple[int, int] = (8, 12)
    test_stride: float | None = None  # default: the middle of stride_range
    num_clips: int = 1

    def __post_init__(self) -> None:
        if self.method not in SAMPLINGS:
            raise UserError(f"unknown sampling '{self.method}'; choose one of {', '.join(SAMPLINGS)}")
        lo, hi = self.stride_range
        if not 1 <= lo <= hi:
            raise UserError(f"stride range must satisfy 1 <= low <= high, got {self.stride_range}")
        if self.clip_len < 1 or self.num_clips < 1:
            raise UserError(f"clip length and clip count must be >= 1, got {self.clip_len}, {self.num_clips}")

    def sample(self, num_frames: int, rng: np.random.Generator, pace: float = 1.0) -> np.ndarray:
        """``pace``: evaluation strides are multiplied by it (a video at twice the training clips' frame rate: 2)."""
        if num_frames < 1:
            raise ValueError("a video needs at least one frame")
        if self.method == "tsn":
            if self.train:
                return tsn_train(num_frames, self.clip_len, rng)
            return tsn_test(num_frames, self.clip_len, self.num_clips)
        if self.train:
            return vidconv_train(num_frames, self.clip_len, self.stride_range, rng)
        stride = self.test_stride if self.test_stride is not None else sum(self.stride_range) / 2
        return vidconv_test(num_frames, self.clip_len, stride * pace, self.num_clips)
