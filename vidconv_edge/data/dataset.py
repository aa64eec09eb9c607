"""``VideoClipDataset``: items -> (uint8 clip (T, 3, S, S) or (V, T, 3, S, S), label), and ``build_datasets``."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from vidconv_edge.data.annotations import Item, load_split
from vidconv_edge.data.decode import VideoReadError, read_frames, video_info
from vidconv_edge.data.sampling import FrameSampler
from vidconv_edge.data.transforms import ClipTransform, TransformOptions, flip_map_from_names
from vidconv_edge.errors import UserError

ORDERS = ("normal", "reverse", "shuffle")


class CorruptVideoWarning(UserWarning):
    """A video could not be read and was skipped."""


class VideoClipDataset(Dataset):
    """Clips of ``clip_len`` frames at ``size`` x ``size`` from video files or frame folders.

    Train: one randomly sampled and augmented clip. Eval: ``views = (clips, crops)`` fixed views;
    (1, 1) gives (T, 3, S, S), anything else (clips * crops, T, 3, S, S), clip-major.
    ``order`` permutes the sampled frames (the frame-order test): normal, reverse or shuffle.
    Multi-label items (label = tuple of class indices) need ``num_classes``; their label comes out as a
    multi-hot float vector.
    Unreadable videos are skipped with a ``CorruptVideoWarning`` (another video is returned) and
    counted in ``failures`` (shared by DataLoader workers); if every video fails, a UserError.
    ``resize_at_decode``: frames larger than the transform's short side are decoded straight to it (less to
    convert and crop on large videos; pixels differ slightly from cropping the full-size frames).
    ``frame_rate``: the rate of the model's training clips; evaluation clips of a video at another rate take
    strides scaled by its rate / ``frame_rate``, so they span the time the model learnt (vidconv sampling).
    """

    def __init__(
        self,
        items: Sequence[Item],
        root: str | os.PathLike | None = None,
        clip_len: int = 9,
        size: int = 96,
        train: bool = True,
        sampling: str = "vidconv",
        stride_range: tuple[int, int] = (8, 12),
        test_stride: float | None = None,
        views: tuple[int, int] = (1, 1),
        flip: bool = True,
        flip_map: dict[int, int] | None = None,
        randaugment: tuple[int, float] | None = None,
        short_side: int | None = None,
        scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66),
        random_crop: bool = False,
        order: str = "normal",
        seed: int = 0,
        num_classes: int | None = None,
        resize_at_decode: bool = False,
        frame_rate: float | None = None,
    ):
        self.items = [(str(p), tuple(int(c) for c in y) if isinstance(y, (tuple, list)) else int(y)) for p, y in items]
        if num_classes is None and any(isinstance(y, tuple) for _, y in self.items):
            raise UserError("multi-label items need num_classes")
        self.num_classes = num_classes
        self.root = Path(root) if root is not None else None
        self.train = train
        clips, crops = (1, 1) if train else tuple(views)
        if order not in ORDERS:
            raise UserError(f"unknown frame order '{order}'; choose one of {', '.join(ORDERS)}")
        self.order, self.seed, self.views = order, seed, (clips, crops)
        self.sampler = FrameSampler(clip_len, train, sampling, tuple(stride_range), test_stride, clips)
        opts = TransformOptions(
            short_side=short_side, scales=tuple(scales), random_crop=random_crop, flip=flip,
            flip_map=dict(flip_map or {}), randaugment=tuple(randaugment) if randaugment else None, crops=crops,
        )  # fmt: skip
        self.transform = ClipTransform(size, train, opts)
        self.resize_at_decode = resize_at_decode
        self.frame_rate = frame_rate
        self._failed = torch.zeros(len(self.items), dtype=torch.bool).share_memory_()

    def __len__(self) -> int:
        return len(self.items)

    @property
    def failures(self) -> int:
        """How many distinct videos failed to read so far (in this process and its workers)."""
        return int(self._failed.sum())

    @property
    def failed_paths(self) -> list[str]:
        return [self.path(i) for i in torch.nonzero(self._failed).flatten().tolist()]

    def path(self, i: int) -> str:
        p = Path(self.items[i][0])
        return str(self.root / p if self.root is not None and not p.is_absolute() else p)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        n = len(self.items)
        last_error: VideoReadError | None = None
        for k in range(n):
            j = (i + k) % n
            if self._failed[j]:
                continue
            try:
                return self.load(j, self._rng(j))
            except VideoReadError as e:
                self._failed[j] = True
                last_error = e
                warnings.warn(f"skipping unreadable video ({self.failures} so far): {e}", CorruptVideoWarning, stacklevel=2)
        detail = f"; last error: {last_error}" if last_error else ""
        raise UserError(f"all {n} videos of the dataset failed to read{detail}")

    def load(self, i: int, rng: np.random.Generator | None = None) -> tuple[torch.Tensor, int]:
        """Item ``i`` without skipping: raises VideoReadError if its video cannot be read."""
        rng = rng if rng is not None else self._rng(i)
        path, label = self.path(i), self.items[i][1]
        info = video_info(path)
        idx = self.sampler.sample(info.num_frames, rng, self._pace(path, info.fps))  # (clips, T)
        if self.order == "reverse":
            idx = idx[:, ::-1]
        elif self.order == "shuffle":
            idx = np.stack([row[rng.permutation(len(row))] for row in idx])
        frames = torch.from_numpy(read_frames(path, idx.reshape(-1), self.decode_size(path))).permute(0, 3, 1, 2)
        clips = frames.reshape(idx.shape[0], idx.shape[1], *frames.shape[1:])
        if self.train:
            clip, label = self.transform(clips[0], label, rng)
            return clip, self._target(label)
        views = [self.transform(c, label)[0] for c in clips]
        if self.views == (1, 1):
            return views[0], self._target(label)
        return torch.cat([v if v.dim() == 5 else v[None] for v in views]), self._target(label)

    def _pace(self, path: str, fps: float) -> float:
        """Evaluation clips of a video at another frame rate than the training clips' (``frame_rate``) span the
        same time: strides x fps / frame_rate (frame folders carry no rate: 1)."""
        if self.train or not self.frame_rate or Path(path).is_dir():
            return 1.0
        pace = fps / self.frame_rate
        return 1.0 if abs(pace - 1.0) < 0.05 else pace  # 29.97 for 30 fps paces as 30

    def decode_size(self, path: str) -> tuple[int, int] | None:
        """(width, height) to decode ``path`` at: its frames scaled to the transform's short side when
        ``resize_at_decode`` and they are larger (the transform would shrink them anyway), else None."""
        if not self.resize_at_decode or Path(path).is_dir():
            return None
        info = video_info(path)
        f = self.transform.short_side / min(info.width, info.height)
        return (round(info.width * f), round(info.height * f)) if f < 1 else None

    def _target(self, label: int | tuple[int, ...]) -> int | torch.Tensor:
        """A class index, or a multi-hot float vector for a multi-label item."""
        if not isinstance(label, tuple):
            return label
        target = torch.zeros(self.num_classes)
        target[list(label)] = 1.0
        return target

    def _rng(self, i: int) -> np.random.Generator:
        if self.train:  # from torch's RNG: seeded per DataLoader worker, saved/restored with checkpoints
            return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        return np.random.default_rng([self.seed, i])


_OPTION_KEYS = {
    "sampling", "stride_range", "test_stride", "flip", "flip_map", "randaugment", "short_side",
    "scales", "random_crop", "val_views", "val_order", "val_fraction", "seed", "multilabel", "resize_at_decode",
    "frame_rate",  # the training videos' rate (recorded by training): evaluation paces other rates to it
}  # fmt: skip


def build_datasets(
    data_dir: str | os.PathLike,
    input_spec: Any,
    train_list: str | os.PathLike | None = None,
    val_list: str | os.PathLike | None = None,
    **options: Any,
) -> tuple[VideoClipDataset, VideoClipDataset, list[str]]:
    """(train dataset, val dataset, class names) for ``data_dir`` and a model's input spec.

    ``input_spec``: an ``InputSpec``, a dict with ``frames`` and ``size``, or a (frames, size) tuple.
    Options (the recipe): sampling ("vidconv" | "tsn"), stride_range, test_stride, flip,
    flip_map ("auto" = from class names, a dict, or None), randaugment ((num_ops, magnitude) or None),
    short_side, scales, random_crop, val_views ((clips, crops)), val_order, val_fraction, seed,
    multilabel (MMAction2 lists with several labels per video; labels come out multi-hot).
    """
    unknown = sorted(set(options) - _OPTION_KEYS)
    if unknown:
        raise UserError(f"unknown data option(s) {unknown}; known: {', '.join(sorted(_OPTION_KEYS))}")
    frames, size = _frames_size(input_spec)
    seed = int(options.get("seed", 0))
    multilabel = bool(options.get("multilabel", False))
    train_items, val_items, names = load_split(data_dir, train_list, val_list, options.get("val_fraction", 0.2), seed, multilabel)
    if not train_items:
        raise UserError(f"{data_dir}: no training videos")
    flip_map = options.get("flip_map", "auto")
    if flip_map == "auto":
        flip_map = flip_map_from_names(names)
    common = dict(
        clip_len=frames, size=size, sampling=options.get("sampling", "vidconv"),
        stride_range=tuple(options.get("stride_range", (8, 12))), test_stride=options.get("test_stride"),
        short_side=options.get("short_side"), resize_at_decode=bool(options.get("resize_at_decode", False)), seed=seed, num_classes=len(names) if multilabel else None,
    )  # fmt: skip
    if "scales" in options:
        common["scales"] = tuple(options["scales"])
    train_ds = VideoClipDataset(
        train_items, train=True, flip=bool(options.get("flip", True)), flip_map=flip_map,
        randaugment=options.get("randaugment"), random_crop=bool(options.get("random_crop", False)), **common,
    )  # fmt: skip
    val_ds = VideoClipDataset(
        val_items, train=False, views=tuple(options.get("val_views", (1, 1))), order=options.get("val_order", "normal"),
        frame_rate=options.get("frame_rate"), **common,
    )  # fmt: skip
    return train_ds, val_ds, names


def load_test_clip(path: str | os.PathLike, input_spec: Any, views: tuple[int, int] = (1, 1), **options: Any) -> torch.Tensor:
    """The evaluation clip(s) of one video, uint8 (T, 3, S, S) or (V, T, 3, S, S); raises VideoReadError.

    ``options`` are ``build_datasets``'s recipe options (sampling, stride_range, test_stride,
    short_side, ...); pass the training recipe's so the clip matches what the model saw in validation.
    Options that only concern training or the split are ignored.
    """
    unknown = sorted(set(options) - _OPTION_KEYS)
    if unknown:
        raise UserError(f"unknown data option(s) {unknown}; known: {', '.join(sorted(_OPTION_KEYS))}")
    frames, size = _frames_size(input_spec)
    keep = {k: options[k] for k in ("sampling", "stride_range", "test_stride", "short_side", "scales", "frame_rate")
            if options.get(k) is not None}  # fmt: skip
    ds = VideoClipDataset([(str(path), 0)], clip_len=frames, size=size, train=False, views=views, **keep)
    return ds.load(0)[0]


def _frames_size(spec: Any) -> tuple[int, int]:
    if isinstance(spec, dict):
        return int(spec["frames"]), int(spec["size"])
    if isinstance(spec, (tuple, list)):
        return int(spec[0]), int(spec[1])
    return int(spec.frames), int(spec.size)
