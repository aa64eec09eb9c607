"""What ``build-fpga`` builds: a quantized checkpoint, a QONNX file, or the bundled default model,
turned into one QONNX file per part plus verification samples from a real video clip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidconv_edge.errors import UserError

PARTS = ("early", "later")


@dataclass
class PartSource:
    """One accelerator: its QONNX file, its integer input format, and reference samples (HW form: NHWC ints)."""

    part: str
    qonnx: Path
    verify_in: np.ndarray
    verify_out: np.ndarray
    input_scale: float | None = None
    input_datatype: str | None = None


def run_reference(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """Execute a QONNX file with qonnx (the reference FINN checks against), one sample at a time."""
    from vidconv_edge.export.qonnx import run_qonnx

    return run_qonnx(path, x)


@dataclass
class BuildSource:
    model: str
    bits: str
    origin: str  # what the weights are
    parts: dict[str, PartSource] = field(default_factory=dict)
    layout: tuple[int, int] = (3, 3)
    img_size: int = 96


def parts_of(part: str) -> tuple[str, ...]:
    if part == "both":
        return PARTS
    if part not in PARTS:
        raise UserError(f"unknown part '{part}': choose early, later or both")
    return (part,)


def video_frames(video: str | os.PathLike | None, size: int, count: int) -> np.ndarray:
    """``count`` consecutive frames of ``video`` (default: the bundled sample) as uint8 (N, 3, size, size)."""
    from vidconv_edge.assets import sample_video
    from vidconv_edge.data.decode import read_frames, video_info

    path = Path(video) if video else sample_video()
    if not path.exists():
        raise UserError(f"verification video not found: {path}")
    n = video_info(path).num_frames
    frames = read_frames(path, np.arange(count) % max(n, 1))
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).numpy()


def calibrated_for_board(float_model, bits, video: str | os.PathLike | None = None, clips: int = 2):
    """PTQ of a float edge model at ``bits``, calibrated on clips of a real video (no training data needed)."""
    from vidconv_edge.quant.calibrate import calibrate
    from vidconv_edge.quant.model import quantize_model

    spec = float_model.input_spec
    frames = video_frames(video, spec.size, clips * spec.frames)
    batches = [torch.from_numpy(frames).float().reshape(clips, spec.frames, 3, spec.size, spec.size)]
    qmodel = quantize_model(float_model.eval(), bits).eval()
    calibrate(qmodel, batches, progress=False)
    return qmodel.eval()


def load_quant_model(source: str | os.PathLike | None, bits) -> tuple[torch.nn.Module, str]:
    """(quantized model, origin): a quantized checkpoint, or the bundled float vic_edge quantized at ``bits``."""
    from vidconv_edge.checkpoint import load_checkpoint
    from vidconv_edge.quant.model import float_model_from_checkpoint, is_quant_checkpoint, quant_model_from_checkpoint

    if source is None:
        from vidconv_edge.assets import default_checkpoint

        path = default_checkpoint()
        float_model, _ = float_model_from_checkpoint(path)
        return calibrated_for_board(float_model, bits), f"bundled {path.name}, PTQ {bits.label()} on sample.mp4"
    ckpt = load_checkpoint(source)
    if not is_quant_checkpoint(ckpt):
        float_model, _ = float_model_from_checkpoint(ckpt)
        return calibrated_for_board(float_model, bits), f"float {Path(source).name}, PTQ {bits.label()} on sample.mp4"
    qmodel, _ = quant_model_from_checkpoint(ckpt)
    return qmodel, f"quantized checkpoint {Path(source).name}"


def _to_int(values: np.ndarray, scale: float, what: str) -> np.ndarray:
    q = values / scale
    r = np.round(q)
    if np.abs(q - r).max() > 1e-3:
        raise UserError(f"{what} is not an integer multiple of its quantizer scale {scale:g}")
    return r.astype(np.float32)


def _nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def prepare_source(
    source: str | os.PathLike | None, board, out_dir: Path, part: str, samples: int, video=None
) -> BuildSource:
    """QONNX file(s) for ``part`` and their verification samples, under ``out_dir/qonnx``."""
    from vidconv_edge.export.qonnx import export_qonnx, read_qonnx_metadata
    from vidconv_edge.quant.bits import make_bits

    wanted = parts_of(part)
    qdir = out_dir / "qonnx"
    bits = make_bits(board.weight_bits, act_bits=board.act_bits)
    if source is not None and Path(source).suffix == ".onnx":
        return _from_qonnx(Path(source), wanted, samples, video, read_qonnx_metadata)
    if source is not None and not Path(source).exists():
        raise UserError(f"model not found: {source}")
    qmodel, origin = load_quant_model(source, bits)
    if not getattr(qmodel, "supports_streaming", False):
        raise UserError(f"model '{qmodel.name}' has no early/later split: build-fpga needs a VidConv edge model")
    spec = qmodel.input_spec
    files = {p: qdir / f"{p}.onnx" for p in PARTS}
    for p in PARTS:  # the later-net's input format is the early-net's output quantizer: export both
        export_qonnx(qmodel, files[p], p)
    build = BuildSource(qmodel.name, qmodel.bits.label(), origin, layout=tuple(qmodel.layout), img_size=spec.size)
    frames_needed = samples + spec.frames - 1
    frames = video_frames(video, spec.size, frames_needed)
    feats = run_reference(files["early"], frames.astype(np.float32))
    e_scale, e_dtype = _output_format(files["early"])
    if "early" in wanted:
        build.parts["early"] = PartSource(
            "early", files["early"], _nhwc(frames[:samples].astype(np.float32)),
            _nhwc(_to_int(feats[:samples], e_scale, "the early-net output")),
        )  # fmt: skip
    if "later" in wanted:
        from vidconv_edge.models.layers import frames_to_collage

        windows = np.concatenate([feats[i : i + spec.frames] for i in range(samples)])
        collages = frames_to_collage(torch.from_numpy(windows), qmodel.layout).numpy()
        logits = run_reference(files["later"], collages)
        l_scale, _ = _output_format(files["later"])
        build.parts["later"] = PartSource(
            "later", files["later"], _nhwc(_to_int(collages, e_scale, "the collage")),
            _to_int(logits, l_scale, "the logits"),
            input_scale=e_scale, input_datatype=e_dtype,
        )  # fmt: skip
    return build


def _output_format(path: Path) -> tuple[float, str]:
    from qonnx.core.modelwrapper import ModelWrapper

    from vidconv_edge.hw.steps_qonnx import quant_output_format

    return quant_output_format(ModelWrapper(str(path)))


def _from_qonnx(path: Path, wanted, samples: int, video, read_meta) -> BuildSource:
    meta = read_meta(path)
    part = meta.get("part")
    if part != "early":
        raise UserError(
            f"{path} holds the '{part}' part: from a QONNX file only an early-net can be built (the later-net needs "
            "the early-net's output quantizer); pass the quantized checkpoint instead"
        )
    if wanted != ("early",):
        raise UserError(f"{path} holds only the early-net: use --part early")
    size = int(meta["input_spec"]["size"])
    frames = video_frames(video, size, samples)
    feats = run_reference(path, frames.astype(np.float32))
    scale, _ = _output_format(path)
    q = meta["quant"]
    bits = f"W{q['weight_bits']['early']}A{q['act_bits']['early']}"
    build = BuildSource(meta.get("model", "?"), bits, f"QONNX file {path.name}", img_size=size)
    build.parts["early"] = PartSource(
        "early", path, _nhwc(frames.astype(np.float32)), _nhwc(_to_int(feats, scale, "the early-net output"))
    )
    return build
