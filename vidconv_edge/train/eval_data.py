"""The evaluation set of a checkpoint: its validation split (or a given list) with the test-time sampling of
the recipe it was trained with, labels mapped onto the checkpoint's class list."""

from __future__ import annotations

import os
from pathlib import Path

from torch.utils.data import Dataset

from vidconv_edge.data.annotations import Item, label_indices
from vidconv_edge.errors import UserError
from vidconv_edge.train.config import DataConfig, Recipe, recipe_from_dict


def checkpoint_recipe(ckpt: dict) -> Recipe:
    """The recipe stored in a training checkpoint (the default recipe for checkpoints without one)."""
    return recipe_from_dict(dict(ckpt.get("recipe") or {}))


def parse_views(text: str) -> tuple[int, int]:
    """``"4x1"`` -> (4, 1): clips x spatial crops."""
    try:
        clips, crops = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--views must look like CLIPSxCROPS (e.g. 4x1, 1x3, 10x3), got '{text}'") from None
    if clips < 1 or crops not in (1, 3):
        raise UserError(f"--views {text}: clips must be >= 1 and crops 1 or 3")
    return clips, crops


def _remap(items: list[Item], names: list[str], class_names: list[str], source: str) -> list[Item]:
    """Labels indexing ``names`` -> labels indexing the checkpoint's ``class_names`` (by name)."""
    if names == class_names:
        return items
    index = {n: i for i, n in enumerate(class_names)}
    used = sorted({c for _, y in items for c in label_indices(y)})
    outside = [names[y] for y in used if names[y] not in index]
    if outside:
        raise UserError(
            f"{source}: label(s) {outside[:5]} outside the checkpoint's class list "
            f"({len(class_names)} classes: {', '.join(class_names[:8])}{', ...' if len(class_names) > 8 else ''})"
        )
    return [(p, tuple(index[names[c]] for c in y) if isinstance(y, tuple) else index[names[y]]) for p, y in items]


def eval_dataset(
    data_dir: str | os.PathLike,
    ckpt: dict,
    list_file: str | os.PathLike | None = None,
    views: tuple[int, int] | None = None,
) -> Dataset:
    """Validation videos of ``data_dir`` (or those of ``list_file``) as the checkpoint's model expects them.

    Without ``list_file`` the split is the one training used (``val.txt``, or the same seeded split).
    ``views`` (clips, crops) defaults to the recipe's ``val_views``.
    """
    from vidconv_edge.data import VideoClipDataset
    from vidconv_edge.data.annotations import load_annotations, load_class_names, load_split

    recipe = checkpoint_recipe(ckpt)
    data: DataConfig = recipe.data
    multilabel = recipe.train.multilabel
    class_names = list(ckpt["class_names"])
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} not found")
    if list_file is not None:
        own = load_class_names(data_dir / "classes.txt") if (data_dir / "classes.txt").is_file() else None
        items, names = load_annotations(list_file, data_dir, own if own is not None else class_names, multilabel)
        items = _remap(items, list(names or own or class_names), class_names, str(list_file))
    else:
        _, items, names = load_split(data_dir, val_fraction=data.val_fraction, seed=recipe.train.seed, multilabel=multilabel)
        items = _remap(items, list(names), class_names, str(data_dir))
    if not items:
        raise UserError(f"{list_file or data_dir}: no videos to evaluate")
    spec = ckpt["input_spec"]
    return VideoClipDataset(
        items,
        clip_len=int(spec["frames"]),
        size=int(spec["size"]),
        train=False,
        sampling=data.sampling,
        stride_range=tuple(data.stride_range),
        test_stride=data.test_stride,
        views=views or tuple(data.val_views),
        short_side=data.short_side,
        resize_at_decode=data.resize_at_decode,
        frame_rate=data.frame_rate,
        seed=recipe.train.seed,
        num_classes=len(class_names) if multilabel else None,
    )
