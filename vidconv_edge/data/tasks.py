"""The two generated datasets (tasks) and which one a model's classes belong to: calibration and demo sets
are written for the checkpoint's own classes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from vidconv_edge.data.camera_motion import CAMERA_CLASSES, TASKS
from vidconv_edge.data.synth import KNOWN_CLASSES
from vidconv_edge.errors import UserError

__all__ = ["TASKS", "task_of", "write_task_dataset"]


def task_of(class_names: Sequence[str]) -> str | None:
    """``camera-motion`` or ``shapes`` if every class belongs to that task, else None."""
    if set(class_names) <= set(CAMERA_CLASSES):
        return "camera-motion"
    if set(class_names) <= set(KNOWN_CLASSES):
        return "shapes"
    return None


def write_task_dataset(out: str | os.PathLike, class_names: Sequence[str], per_class: int, seed: int, size: int,
                       overwrite: bool = True, progress: bool = False) -> Path:  # fmt: skip
    """A generated set of ``class_names`` (camera motion over the built-in training footage, or synthetic shapes);
    UserError for classes of neither task."""
    task = task_of(class_names)
    if task == "camera-motion":
        from vidconv_edge.data.camera_motion import write_camera_motion_dataset

        return write_camera_motion_dataset(out, ("builtin:train",), per_class=per_class, size=max(size, 128), seed=seed,
                                           classes=class_names, overwrite=overwrite, progress=progress)  # fmt: skip
    if task == "shapes":
        from vidconv_edge.data.synth import write_synthetic_dataset

        return write_synthetic_dataset(out, per_class=per_class, size=size, seed=seed, classes=class_names,
                                       overwrite=overwrite, progress=progress)  # fmt: skip
    raise UserError(f"no generated dataset has the classes {list(class_names)[:8]}: give a data folder with videos of them")
