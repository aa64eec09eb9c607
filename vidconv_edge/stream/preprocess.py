"""Frames of any resolution -> the model's input, exactly as evaluation clips are prepared:
resize the short side (to size * 8/7, MMAction2's eval default), center-crop, normalise."""

from __future__ import annotations

import numpy as np
import torch

from vidconv_edge.data.transforms import ClipTransform, normalize
from vidconv_edge.models.base import InputSpec


class Preprocessor:
    """Turns one (H, W, 3) uint8 RGB frame into a normalised (3, S, S) float32 array for ``spec``."""

    def __init__(self, spec: InputSpec):
        self.spec = spec
        self.transform = ClipTransform(spec.size, train=False)

    def crop(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (1, 3, S, S) uint8: the evaluation resize + center crop."""
        frame = torch.from_numpy(np.require(image, requirements=["C", "W"])).permute(2, 0, 1)[None]
        return self.transform(frame, 0)[0]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB frame, got shape {image.shape}")
        return normalize(self.crop(image), self.spec.mean, self.spec.std)[0].numpy()
