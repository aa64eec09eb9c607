"""The streaming engine: early-net per frame into the ring, later-net on the collage every K frames."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vidconv_edge.errors import UserError
from vidconv_edge.stream.backends.base import Backend
from vidconv_edge.stream.ring import Collage, FrameRing
from vidconv_edge.stream.stats import LatencyStats

PAD_POLICIES = ("none", "first")


@dataclass
class Prediction:
    """One streamed output: the window ending at source frame ``frame`` (time ``time`` s)."""

    frame: int
    time: float
    logits: np.ndarray
    top: list[tuple[str, float]]
    reference_diff: float | None = None  # max |streamed - whole-model| logits, with recompute

    def to_json(self) -> dict:
        return {
            "frame": self.frame,
            "time": round(self.time, 6),
            "top": [[label, prob] for label, prob in self.top],
            "logits": [float(v) for v in self.logits],
        }


def paced_frame_step(source_fps: float | None, model_rate: float | None) -> int:
    """K of ``--frame-step auto``: taking every K-th frame of a source at ``source_fps`` comes nearest to the frame
    rate of the clips the model learnt, K = round(source_fps / model_rate) >= 1; 1 when a rate is unknown."""
    if not source_fps or not model_rate:
        return 1
    return max(1, int(source_fps / model_rate + 0.5))


def pacing(source_fps: float | None, model_rate: float | None, auto: bool) -> dict:
    """The summary's record of how the frame step was chosen (``auto``: from the two rates)."""
    return {"source_fps": round(source_fps, 3) if source_fps else None, "model_frame_rate": model_rate,
            "frame_step_auto": auto}  # fmt: skip


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


@dataclass
class Timings:
    """Per-call latencies in milliseconds, bounded: a live stream runs for days (see :class:`LatencyStats`)."""

    early: LatencyStats = field(default_factory=LatencyStats)
    later: LatencyStats = field(default_factory=LatencyStats)
    full: LatencyStats = field(default_factory=LatencyStats)


class StreamEngine:
    """Sliding-window inference over a frame stream.

    Every pushed frame runs the early-net once and enters a ring of the last L maps. Once the ring
    is full, every ``stride``-th frame lays the ring out as the collage (oldest frame at tile 0) and
    runs the later-net. Warm-up: no output before L frames, unless ``pad="first"``: the ring starts
    filled with copies of the first frame's map, so outputs begin at the first frame (the window is
    then the first frame repeated, followed by the frames seen so far).
    With ``recompute``, each output also runs the whole model on the same L frames and records the
    maximum absolute difference of the logits (the exactness check; slow by design).
    A ``whole_clip`` backend (a model without an early/later split, e.g. SEVNet's FPGA accelerator) has no
    feature buffer: the ring holds the last L frames and each output runs the whole model on them.
    ``frame_step`` K: only every K-th frame offered is taken (frames 0, K, 2K, ...), the others are dropped
    unseen: a model trained on 15 fps clips sees a 30 fps camera at its own pace with K = 2. ``stride`` and
    the warm-up count taken frames.
    """

    def __init__(self, backend: Backend, stride: int = 1, pad: str = "none", topk: int = 5, recompute: bool = False,
                 frame_step: int = 1):  # fmt: skip
        if stride < 1:
            raise UserError(f"--stride must be >= 1, got {stride}")
        if frame_step < 1:
            raise UserError(f"--frame-step must be >= 1, got {frame_step}")
        if pad not in PAD_POLICIES:
            raise UserError(f"unknown pad policy '{pad}': choose one of {', '.join(PAD_POLICIES)}")
        if topk < 1:
            raise UserError(f"--topk must be >= 1, got {topk}")
        self.whole_clip = bool(getattr(backend, "whole_clip", False))
        if recompute and self.whole_clip:
            raise UserError(
                f"--recompute checks the early-net frame buffer against the whole clip; '{backend.model_name}' runs "
                "the whole clip for every output already (no frame buffer to check)"
            )
        self.backend, self.stride, self.pad, self.recompute = backend, stride, pad, recompute
        self.topk = min(topk, len(backend.class_names))
        self.length = backend.input_spec.frames
        self.layout = None if self.whole_clip else tuple(backend.input_spec.layout)
        self.feats = FrameRing(self.length)
        self.frames = FrameRing(self.length) if recompute else None  # inputs, for the reference
        self._collage: Collage | None = None  # the later-net's input, reused every output
        self.timings = Timings()
        self.max_abs_diff = 0.0 if recompute else None
        self.frame_step, self.offered = frame_step, 0
        self.pushed = 0
        self._ready_at: int | None = None  # push count at which the first window was complete

    @property
    def warmup(self) -> tuple[int, int]:
        """(frames in the ring, frames needed) before the first output."""
        return min(self.feats.count, self.length), self.length

    def push(self, frame: np.ndarray, index: int, time_s: float) -> Prediction | None:
        """Feed one normalised frame (3, S, S) float32; returns a prediction on output steps."""
        self.offered += 1
        if (self.offered - 1) % self.frame_step:
            return None
        if self.whole_clip:
            feat = frame
        else:
            with self.timings.early.time():
                feat = self.backend.early(frame[None])[0]
        first = self.pushed == 0
        self.pushed += 1
        if first and self.pad == "first":
            self.feats.fill(feat)
            if self.frames is not None:
                self.frames.fill(frame)
        else:
            self.feats.push(feat)
            if self.frames is not None:
                self.frames.push(frame)
        if not self.feats.ready:
            return None
        if self._ready_at is None:
            self._ready_at = self.pushed
        if (self.pushed - self._ready_at) % self.stride:
            return None
        if self.whole_clip:
            with self.timings.full.time():
                logits = self.backend.full(self.feats.window()[None])[0]
            return self._prediction(index, time_s, logits, None)
        with self.timings.later.time():
            if self._collage is None:
                self._collage = Collage(feat.shape, feat.dtype, self.layout, self.backend.channels_last)
            self.feats.window_into(self._collage.tiles)
            logits = self.backend.later(self._collage.array)[0]
        diff = self._check(logits) if self.recompute else None
        return self._prediction(index, time_s, logits, diff)

    def _prediction(self, index: int, time_s: float, logits: np.ndarray, diff: float | None) -> Prediction:
        probs = softmax(logits.astype(np.float64))
        order = np.argsort(-probs)[: self.topk]
        top = [(self.backend.class_names[i], round(float(probs[i]), 6)) for i in order]
        return Prediction(index, time_s, logits, top, diff)

    def _check(self, logits: np.ndarray) -> float:
        with self.timings.full.time():
            ref = self.backend.full(self.frames.window()[None])[0]
        diff = float(np.abs(ref.astype(np.float64) - logits).max())
        self.max_abs_diff = max(self.max_abs_diff, diff)
        return diff
