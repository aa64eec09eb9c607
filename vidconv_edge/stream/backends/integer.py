"""The host side of the integer (FPGA) backends, shared by ``finn-sim`` and ``pynq``; numpy only.

Per frame: pixels -> the early accelerator's input (NHWC uint8), its integer output map goes to the
engine's ring as is (NHWC, a small integer type). Per output: the ring's NHWC collage of integers is the
later accelerator's input; its integer logits times the output scale are the logits. An accelerator is
anything with ``__call__(one normal-shape integer sample) -> integer sample`` (:class:`Accelerator`):
FINN's python execution of the HW graph (finn-sim), or :class:`PackedAccelerator` = packing + a
:class:`Device` that moves packed buffers (the DMA driver on the board).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from vidconv_edge.errors import UserError
from vidconv_edge.hw.deploy import CLIP
from vidconv_edge.stream.backends.bundle import FpgaBundle, PartSpec, StreamIO
from vidconv_edge.stream.backends.packing import container_dtype, pack, parse_datatype, unpack
from vidconv_edge.stream.ring import collage
from vidconv_edge.stream.stats import LatencyStats, merged


class Accelerator(Protocol):
    """One accelerator: a (1, ...) integer array of the input stream's normal shape -> the output's."""

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


class Device(Protocol):
    """Moves one packed input buffer through the hardware and returns the packed output buffer."""

    def __call__(self, packed: np.ndarray) -> np.ndarray: ...


class PackedAccelerator:
    """An :class:`Accelerator` over a :class:`Device`: fold + pack the input, unpack + unfold the output.
    ``host_ms``: the time of each host-side stage (pack, the device's DMA round trip, unpack), where it runs."""

    def __init__(self, part: PartSpec, device: Device):
        self.part, self.device = part, device
        self.host_ms = {"pack": LatencyStats(), "dma": LatencyStats(), "unpack": LatencyStats()}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        i, o = self.part.input, self.part.output
        with self.host_ms["pack"].time():
            packed = pack(x.reshape(i.folded_shape), i.datatype)
        with self.host_ms["dma"].time():
            out = np.asarray(self.device(packed))
        with self.host_ms["unpack"].time():
            return unpack(out.reshape(*o.folded_shape[:-1], -1), o.datatype, o.folded_shape[-1]).reshape(o.shape)


def host_stages(accelerators: dict[str, object]) -> dict[str, LatencyStats]:
    """The host-side stages (pack / dma / unpack) of the packed accelerators, summed over the parts."""
    parts = [getattr(acc, "host_ms", {}) for acc in accelerators.values()]
    names = dict.fromkeys(name for part in parts for name in part)
    return {name: merged([part[name] for part in parts if name in part]) for name in names}


def to_stream(values: np.ndarray, io: StreamIO) -> np.ndarray:
    """Real values (here: pixels 0..255 as float) -> the stream's integers in their numpy container type."""
    bits, signed = parse_datatype(io.datatype)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    q = np.rint(values / io.scale if io.scale != 1.0 else values)
    return np.clip(q, lo, hi).astype(container_dtype(io.datatype))


def class_names(bundle: FpgaBundle, output_part: PartSpec) -> list[str]:
    """The bundle's class names, or "0".."N-1" when they do not match the logits of ``output_part``."""
    n_out = output_part.output.shape[-1]
    return bundle.class_names if len(bundle.class_names) == n_out else [str(i) for i in range(n_out)]


class IntegerBackend:
    """The :class:`~vidconv_edge.stream.backends.base.Backend` of an integer early/later accelerator pair.

    ``early`` takes the preprocessed frames (raw pixel values, ``bundle.input_spec``) and returns NHWC
    integer maps (``channels_last``); ``later`` takes their NHWC collage and returns dequantised logits;
    ``full`` runs both on a whole clip without the ring (``--recompute``). Bit-exact by construction: the
    stream and the reference see the same integers.
    """

    channels_last = True
    whole_clip = False

    def __init__(self, name: str, bundle: FpgaBundle, early: Accelerator, later: Accelerator):
        self.name, self.bundle = name, bundle
        self.model_name = bundle.model_name
        self.input_spec = bundle.input_spec
        self.class_names = class_names(bundle, bundle.parts["later"])
        self.frame_rate = bundle.frame_rate
        self._early, self._later = early, later
        self._early_io, self._later_io = bundle.parts["early"], bundle.parts["later"]
        self._map_dtype = container_dtype(self._early_io.output.datatype)
        self._scale = np.float32(self._later_io.output.scale)

    def host_stages(self) -> dict[str, LatencyStats]:
        """Host-side stages of the accelerators (pack, DMA round trip, unpack) when they run on a device."""
        return host_stages({"early": self._early, "later": self._later})

    def early(self, frames: np.ndarray) -> np.ndarray:
        x = to_stream(frames.transpose(0, 2, 3, 1), self._early_io.input)
        return np.concatenate([self._early(x[i : i + 1]).astype(self._map_dtype) for i in range(len(x))])

    def later(self, collage_nhwc: np.ndarray) -> np.ndarray:
        return self._later(collage_nhwc).astype(np.float32).reshape(1, -1) * self._scale

    def full(self, clip: np.ndarray) -> np.ndarray:
        feats = self.early(clip[0])
        return self.later(collage(feats, self.input_spec.layout, channels_last=True))


def stack_frames(frames: np.ndarray, pitch: int) -> np.ndarray:
    """(L, S, S, C) frames -> (1, L*pitch, S, C): stacked along H, each followed by ``pitch - S`` zero rows
    (the input layout of SEVNet's FPGA form, ``quant.sevnet_fpga``)."""
    n, s, w, c = frames.shape
    out = np.zeros((1, n, pitch, w, c), dtype=frames.dtype)
    out[0, :, :s] = frames
    return out.reshape(1, n * pitch, w, c)


class ClipBackend:
    """The :class:`~vidconv_edge.stream.backends.base.Backend` of a whole-clip accelerator (``clip`` part:
    SEVNet's FPGA form). No frame buffer of features: each output runs the accelerator on the last L frames,
    stacked along H with the bundle's pitch as uint8 NHWC; its integer logits times the output scale."""

    channels_last = True
    whole_clip = True

    def __init__(self, name: str, bundle: FpgaBundle, clip: Accelerator):
        self.name, self.bundle = name, bundle
        self.model_name = bundle.model_name
        self.input_spec = bundle.input_spec
        self._io = bundle.parts[CLIP]
        self.class_names = class_names(bundle, self._io)
        self.frame_rate = bundle.frame_rate
        self._clip, self._pitch = clip, int(self._io.input.shape[1]) // bundle.frames
        self._scale = np.float32(self._io.output.scale)

    def host_stages(self) -> dict[str, LatencyStats]:
        """Host-side stages of the accelerator (pack, DMA round trip, unpack) when it runs on a device."""
        return host_stages({CLIP: self._clip})

    def early(self, frames: np.ndarray) -> np.ndarray:
        raise UserError(f"'{self.model_name}' runs as one clip accelerator: it has no early-net (use full)")

    def later(self, collage: np.ndarray) -> np.ndarray:
        raise UserError(f"'{self.model_name}' runs as one clip accelerator: it has no later-net (use full)")

    def full(self, clip: np.ndarray) -> np.ndarray:
        x = stack_frames(to_stream(clip[0].transpose(0, 2, 3, 1), self._io.input), self._pitch)
        return self._clip(x).astype(np.float32).reshape(1, -1) * self._scale
