"""Frames of any resolution -> the model's input, exactly as evaluation clips are prepared:
resize the short side (to size * 8/7, MMAction2's eval default), center-crop, normalise.

Two resizers: ``torch`` (``data.transforms.ClipTransform``, bit-identical to evaluation clips; the
default where torch is installed) and ``pil`` (PIL's antialiased bilinear, for the board, which has
no torch; within one grey level of ``torch``).
"""

from __future__ import annotations

import importlib.util

import numpy as np

from vidconv_edge.spec import InputSpec

RESIZERS = ("torch", "pil")


def eval_crop_box(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """(y0, x0, h, w) on the original frame of the evaluation center crop (``ClipTransform(train=False)``)."""
    f = round(size * 8 / 7) / min(height, width)
    rh, rw = round(height * f), round(width * f)
    ch, cw = min(size, rh), min(size, rw)
    y0, x0, h, w = (rh - ch) // 2, (rw - cw) // 2, ch, cw
    ys, xs = min(round(y0 / f), height - 1), min(round(x0 / f), width - 1)
    return ys, xs, min(max(1, round(h / f)), height - ys), min(max(1, round(w / f)), width - xs)


class Preprocessor:
    """Turns one (H, W, 3) uint8 RGB frame into a normalised (3, S, S) float32 array for ``spec``."""

    def __init__(self, spec: InputSpec, resize: str | None = None):
        if resize is None:
            resize = "torch" if importlib.util.find_spec("torch") is not None else "pil"
        if resize not in RESIZERS:
            raise ValueError(f"unknown resizer '{resize}': choose one of {', '.join(RESIZERS)}")
        self.spec, self.resize = spec, resize
        s = np.float32(255.0)
        self._mean = np.asarray(spec.mean, np.float32).reshape(3, 1, 1) * s
        self._std = np.asarray(spec.std, np.float32).reshape(3, 1, 1) * s
        if resize == "torch":
            from vidconv_edge.data.transforms import ClipTransform

            self._transform = ClipTransform(spec.size, train=False)

    def crop(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (3, S, S) uint8: the evaluation resize + center crop."""
        if self.resize == "torch":
            import torch

            frame = torch.from_numpy(np.require(image, requirements=["C", "W"])).permute(2, 0, 1)[None]
            return self._transform(frame, 0)[0][0].numpy()
        from PIL import Image

        y0, x0, h, w = eval_crop_box(*image.shape[:2], self.spec.size)
        crop = Image.fromarray(np.ascontiguousarray(image[y0 : y0 + h, x0 : x0 + w]))
        if (h, w) != (self.spec.size, self.spec.size):
            crop = crop.resize((self.spec.size, self.spec.size), Image.BILINEAR)
        return np.asarray(crop).transpose(2, 0, 1)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB frame, got shape {image.shape}")
        return (self.crop(image).astype(np.float32) - self._mean) / self._std
