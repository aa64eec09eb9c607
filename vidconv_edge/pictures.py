"""Decoded pictures as a model should see them: upright (display rotation, EXIF orientation) and 8-bit RGB.

No torch here: the board's stream host path (``stream.sources``) uses it too.
"""

from __future__ import annotations

import numpy as np


def rgb_image(im) -> np.ndarray:
    """A PIL image as uint8 RGB (H, W, 3), turned upright by its EXIF orientation (as photo viewers show it);
    a 16-bit grey image scaled to 8 bits (PIL's own conversion clips it: it would come out nearly white)."""
    from PIL import ImageOps

    im = ImageOps.exif_transpose(im)
    if im.mode.startswith("I;16") or im.mode == "I":
        grey = np.clip(np.round(np.asarray(im, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """A decoded frame as it is meant to be shown: turned by its display rotation (degrees counter-clockwise,
    PyAV's ``VideoFrame.rotation``), as players and OpenCV do. A phone holds a video shot upright as landscape
    frames plus a rotation: unturned, its pans would look like tilts."""
    k = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def frame_rgb(frame, size: tuple[int, int] | None = None) -> np.ndarray:
    """A PyAV video frame as upright uint8 RGB; ``size`` (width, height) converts the stored frame while decoding,
    before it is turned (a PyAV without ``VideoFrame.rotation``, before 14: the frame as stored)."""
    kw = {} if size is None else {"width": size[0], "height": size[1]}
    return upright(frame.to_ndarray(format="rgb24", **kw), getattr(frame, "rotation", 0))
