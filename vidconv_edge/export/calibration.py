"""Calibration inputs for ONNX Runtime static quantization, taken from a video dataset."""

from __future__ import annotations

import os

import numpy as np
import torch

from vidconv_edge.data import build_datasets, normalize
from vidconv_edge.export.parts import part_module


def calibration_inputs(model: torch.nn.Module, data_dir: str | os.PathLike, part: str, clips: int = 8) -> list[np.ndarray]:
    """Inputs of ``part`` (batch 1 each) for ``clips`` validation clips of ``data_dir``."""
    spec = model.input_spec
    _, val, _ = build_datasets(data_dir, spec)
    part_module(model, part)  # validates the part for this model
    inputs: list[np.ndarray] = []
    with torch.no_grad():
        for i in range(min(clips, len(val))):
            clip = normalize(val[i][0][None], spec.mean, spec.std)
            if part == "full":
                inputs.append(clip.numpy())
            elif part == "early":
                inputs.extend(f[None].numpy() for f in clip[0])
            else:
                inputs.append(model.collage(model.forward_early(clip[0])).numpy())
    return inputs
