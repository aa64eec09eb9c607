"""The frame buffer: a ring of the last L early-net maps, laid out as the model's collage."""

from __future__ import annotations

import numpy as np


def collage(feats: np.ndarray, layout: tuple[int, int], channels_last: bool = False) -> np.ndarray:
    """(B*L, C, h', w') time-ordered maps -> (B, C, h*h', w*w'); frame i at tile (i // w, i % w).
    With ``channels_last``: (B*L, h', w', C) -> (B, h*h', w*w', C), the same tiles (the FPGA streams' layout).

    The numpy twin of ``VidConv.collage`` (``models.layers.frames_to_collage``)."""
    h, w = layout
    if channels_last:
        n, th, tw, c = feats.shape
        x = feats.reshape(n // (h * w), h, w, th, tw, c).transpose(0, 1, 3, 2, 4, 5)
        return np.ascontiguousarray(x.reshape(n // (h * w), h * th, w * tw, c))
    n, c, th, tw = feats.shape
    x = feats.reshape(n // (h * w), h, w, c, th, tw).transpose(0, 3, 1, 4, 2, 5)
    return np.ascontiguousarray(x.reshape(n // (h * w), c, h * th, w * tw))


class Collage:
    """A preallocated (1, C, h*h', w*w') collage (``(1, h*h', w*w', C)`` when ``channels_last``) and
    views of its L tiles in time order: the ring copies its maps into them per output, allocating nothing
    (a fresh collage per output costs page faults: it is larger than malloc's mmap threshold)."""

    def __init__(self, item_shape: tuple[int, ...], dtype, layout: tuple[int, int], channels_last: bool = False):
        h, w = layout
        if channels_last:
            th, tw, c = item_shape
            self.array = np.empty((1, h * th, w * tw, c), dtype)
            grid = self.array.reshape(h, th, w, tw, c)
            self.tiles = [grid[i // w, :, i % w] for i in range(h * w)]
        else:
            c, th, tw = item_shape
            self.array = np.empty((1, c, h * th, w * tw), dtype)
            grid = self.array.reshape(c, h, th, w, tw)
            self.tiles = [grid[:, i // w, :, i % w] for i in range(h * w)]


class FrameRing:
    """The last ``length`` arrays pushed (e.g. early-net maps), oldest first in :meth:`window`."""

    def __init__(self, length: int):
        if length < 1:
            raise ValueError(f"ring length must be >= 1, got {length}")
        self.length = length
        self.count = 0  # arrays pushed so far (copies from fill() count as pushed)
        self._buf: np.ndarray | None = None
        self._next = 0  # slot the next push writes

    @property
    def ready(self) -> bool:
        return self.count >= self.length

    def push(self, item: np.ndarray) -> None:
        if self._buf is None:
            self._buf = np.empty((self.length, *item.shape), dtype=item.dtype)
        self._buf[self._next] = item
        self._next = (self._next + 1) % self.length
        self.count += 1

    def fill(self, item: np.ndarray) -> None:
        """Fill every slot with copies of ``item`` (the ``--pad first`` policy)."""
        for _ in range(self.length):
            self.push(item)

    def window(self) -> np.ndarray:
        """(length, ...) the buffered arrays in arrival order, oldest first."""
        if not self.ready:
            raise RuntimeError(f"ring holds {self.count} of {self.length} entries")
        order = (np.arange(self.length) + self._next) % self.length
        return self._buf[order]

    def window_into(self, tiles: list[np.ndarray]) -> None:
        """Copy the buffered arrays, oldest first, into ``tiles`` (e.g. :attr:`Collage.tiles`)."""
        if not self.ready:
            raise RuntimeError(f"ring holds {self.count} of {self.length} entries")
        for t, dst in enumerate(tiles):
            np.copyto(dst, self._buf[(self._next + t) % self.length])
