"""The one interface every streaming backend implements (numpy in, numpy out, batch 1)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from vidconv_edge.spec import InputSpec


@runtime_checkable
class Backend(Protocol):
    """A VidConv model split into its per-frame early-net and its collage later-net.

    - ``early(frames (N, 3, S, S)) -> (N, C, h', w')`` per-frame feature maps
      (``(N, h', w', C)`` when ``channels_last``: the integer FPGA backends keep the streams' NHWC layout),
    - ``later(collage (1, C, h*h', w*w')) -> (1, num_classes)`` logits (collage NHWC when ``channels_last``),
    - ``full(clip (1, L, 3, S, S)) -> (1, num_classes)``: the whole model, the reference for ``--recompute``.

    Inputs are float32, already resized and normalised as ``input_spec`` says. A ``whole_clip`` backend (a model
    without the split: SEVNet's whole-clip accelerator) implements ``full`` only; the engine then buffers frames.
    """

    name: str
    model_name: str
    input_spec: InputSpec
    class_names: list[str]
    frame_rate: float | None  # of the clips the model learnt (its recipe's record); None if unknown
    channels_last: bool
    whole_clip: bool

    def early(self, frames: np.ndarray) -> np.ndarray: ...

    def later(self, collage: np.ndarray) -> np.ndarray: ...

    def full(self, clip: np.ndarray) -> np.ndarray: ...
