"""ONNX Runtime backend: the ``early`` and ``later`` ONNX parts (+ ``full`` for ``--recompute``).

Accepts the ``early`` file itself, or a folder holding ``early.onnx`` and ``later.onnx``
(and ``full.onnx``). The parts are found beside each other by name. A checkpoint's parts come
from ``onnx_cache`` (exported on first use).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vidconv_edge.errors import UserError
from vidconv_edge.models.base import InputSpec
from vidconv_edge.spec import recipe_frame_rate

PART_FILES = {"early": "early.onnx", "later": "later.onnx", "full": "full.onnx"}


def locate_parts(path: str | os.PathLike) -> dict[str, Path]:
    """``{"early": ..., "later": ..., "full": ...?}`` for a folder or an early-part file."""
    path = Path(path)
    if path.is_dir():
        folder, early = path, path / PART_FILES["early"]
    elif path.is_file():
        folder, early = path.parent, path
    else:
        raise UserError(f"ONNX model not found: {path}")
    parts = {"early": early, "later": folder / PART_FILES["later"], "full": folder / PART_FILES["full"]}
    if early.name != PART_FILES["early"]:  # e.g. vic_edge.early.onnx -> vic_edge.later.onnx
        stem = early.name.replace("early", "{}", 1)
        if "{}" not in stem:
            raise UserError(f"{early}: name the early part '*early*.onnx' so the later part can be found beside it")
        parts = {part: folder / stem.format(part) for part in PART_FILES}
    for part in ("early", "later"):
        if not parts[part].is_file():
            raise UserError(f"onnxruntime backend needs the '{part}' ONNX part: {parts[part]} not found")
    if not parts["full"].is_file():
        del parts["full"]
    return parts


class OnnxBackend:
    """``early``/``later`` (and ``full``) parts as ONNX Runtime CPU sessions."""

    name = "onnxruntime"
    channels_last = False
    whole_clip = False

    def __init__(self, path: str | os.PathLike, threads: int = 0):
        import onnxruntime as ort

        from vidconv_edge.export.onnx import read_metadata

        self.parts = locate_parts(path)
        metas = {part: read_metadata(p) for part, p in self.parts.items()}
        for part, meta in metas.items():
            if meta.get("part") != part:
                raise UserError(f"{self.parts[part]} holds the '{meta.get('part')}' part, expected '{part}'")
            if meta["config"] != metas["early"]["config"]:
                raise UserError(f"{self.parts[part]} is not from the same model as {self.parts['early']}")
        meta = metas["early"]
        spec = meta["input_spec"]
        if not spec.get("layout"):
            raise UserError(f"model '{meta['model']}' cannot stream: it has no collage layout")
        self.input_spec = InputSpec(
            spec["frames"], spec["size"], tuple(spec["mean"]), tuple(spec["std"]), tuple(spec["layout"])
        )
        self.model_name = meta["model"]
        self.class_names = list(meta["class_names"])
        self.frame_rate = recipe_frame_rate(meta.get("recipe"))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self._sessions = {
            part: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
            for part, p in self.parts.items()
        }

        self._inputs = {part: sess.get_inputs()[0].name for part, sess in self._sessions.items()}

    def _run(self, part: str, x: np.ndarray) -> np.ndarray:
        return self._sessions[part].run(None, {self._inputs[part]: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def early(self, frames: np.ndarray) -> np.ndarray:
        if len(frames) == 1:  # the stream's case
            return self._run("early", frames)
        # the exported parts have batch 1 (static shapes): run frame by frame
        return np.concatenate([self._run("early", f[None]) for f in frames])

    def later(self, collage: np.ndarray) -> np.ndarray:
        return self._run("later", collage)

    def full(self, clip: np.ndarray) -> np.ndarray:
        if "full" not in self._sessions:
            folder = self.parts["early"].parent
            raise UserError(f"--recompute with onnxruntime needs the 'full' ONNX part beside the others ({folder})")
        return self._run("full", clip)
