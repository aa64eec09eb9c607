"""What ``build-fpga`` builds: a quantized checkpoint, a QONNX file, or the bundled default model,
turned into one QONNX file per part plus verification samples from a real video clip.

The expected outputs are the QONNX model executed in float64 (``reference``): qonnx's float32 executor
puts about one 8-bit activation per frame on the wrong side of a rounding boundary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidconv_edge.errors import UserError
from vidconv_edge.hw.deploy import CLIP
from vidconv_edge.spec import recipe_frame_rate

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
    reference: dict = field(default_factory=dict)  # how the expected outputs were computed


def run_reference(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """Execute a QONNX file in float64 (the reference the HW graph must equal), one sample at a time."""
    from vidconv_edge.hw.reference import run_qonnx_float64

    return run_qonnx_float64(path, x)


def reference_info(path: Path, x: np.ndarray, expected: np.ndarray, scale: float) -> dict:
    """The reference's method, and how many integer outputs qonnx's float32 executor would get differently."""
    from vidconv_edge.export.qonnx import run_qonnx

    f32 = np.round(run_qonnx(path, x.astype(np.float32)) / scale)
    return {
        "reference": "QONNX model executed in float64 (onnx reference evaluator + qonnx Quant)",
        "float32_reference_differs": int((_nhwc(f32) != expected).sum()),
    }


@dataclass
class BuildSource:
    model: str
    bits: str
    origin: str  # what the weights are
    parts: dict[str, PartSource] = field(default_factory=dict)
    layout: tuple[int, int] = (3, 3)
    img_size: int = 96
    frames: int = 9
    class_names: list[str] = field(default_factory=list)
    float_spec: dict = field(default_factory=dict)  # the float model's input spec (mean / std it was trained with)
    part_formats: dict[str, dict] = field(default_factory=dict)  # part -> input/output integer format (metadata)
    quantization: dict | None = None  # float vs quantized val top-1 when the build quantized the model
    frame_rate: float | None = None  # of the clips the model learnt (its recipe's record), for the deploy manifest


def parts_of(part: str) -> tuple[str, ...]:
    """The parts ``--part`` builds: ``both`` (one merged design) and ``both-separate`` (two) build both."""
    if part in ("both", "both-separate"):
        return PARTS
    if part not in (*PARTS, CLIP):
        raise UserError(f"unknown part '{part}': choose early, later, both, both-separate or clip")
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


def load_quant_model(source: str | os.PathLike | None, bits, out_dir: Path, data=None, qat_epochs: int = 0,
                     log=print) -> tuple[torch.nn.Module, str, list[str], dict | None, dict | None]:  # fmt: skip
    """(quantized model, origin, class names, quantization summary, training recipe): a quantized checkpoint as it
    is, or a float one (None: the bundled vic_edge) quantized at ``bits`` with ``hw.quantize`` (PTQ on ``data``,
    + QAT). The recipe goes into the QONNX parts so evaluating the build samples clips as the checkpoint does."""
    from vidconv_edge.assets import bundled_quantized
    from vidconv_edge.checkpoint import load_checkpoint
    from vidconv_edge.hw.quantize import quantize_for_board
    from vidconv_edge.quant.model import is_quant_checkpoint, quant_model_from_checkpoint
    from vidconv_edge.quant.sevnet_fpga import se_refusal

    if source is None:
        from vidconv_edge.assets import default_checkpoint

        source, what = default_checkpoint(), "bundled"
    else:
        ckpt = load_checkpoint(source)
        if (ckpt.get("config") or {}).get("se"):
            raise UserError(se_refusal(ckpt.get("model", "?")))
        if is_quant_checkpoint(ckpt):
            if qat_epochs:
                raise UserError("--qat-epochs fine-tunes a float checkpoint's quantized model: give the float one")
            qmodel, _ = quant_model_from_checkpoint(ckpt)
            return qmodel, f"quantized checkpoint {Path(source).name}", list(ckpt["class_names"]), None, ckpt.get("recipe")
        what = "float"
    bundled = bundled_quantized(source, bits.label()) if data is None and not qat_epochs else None
    if bundled is not None:  # the bundled model's own QAT form at this precision (default_model --qat)
        qmodel, qckpt = quant_model_from_checkpoint(bundled)
        origin = f"{what} {Path(source).name}: its bundled {bits.label()} form {bundled.name}"
        return qmodel, origin, list(qckpt["class_names"]), bundled_info(qckpt, bundled, bits), qckpt.get("recipe")
    qckpt, info = quantize_for_board(source, bits, out_dir, data, qat_epochs, log=log)
    qmodel, ckpt = quant_model_from_checkpoint(qckpt)
    how = f"PTQ + QAT {qat_epochs} epoch(s), kept {info.get('final', 'qat')}" if qat_epochs else "PTQ"
    origin = f"{what} {Path(source).name}, {bits.label()} {how} on {Path(info['data']).name}"
    return qmodel, origin, list(ckpt["class_names"]), info, ckpt.get("recipe")


def bundled_info(qckpt: dict, path: Path, bits) -> dict:
    """The report's ``quantization`` entry for a bundled QAT model: its validation numbers and held-out top-1."""
    from vidconv_edge.train.metrics import accuracy_entry

    made = qckpt.get("report") or {}
    test = (made.get("test") or {}).get("normal") or {}
    info = {**(made.get("qat") or {}), "bits": bits.label(), "qat_epochs": made.get("epochs"), "checkpoint": path.name,
            "data": "the bundled training set (python -m vidconv_edge.apps.default_model --qat)"}  # fmt: skip
    if test.get("num_samples"):
        info["heldout"] = {**accuracy_entry(test["top1"], test["num_samples"]),
                           "list": "the held-out footage (builtin:test) of default_model, as measured when it was made"}  # fmt: skip
    return info


def add_heldout(quantization: dict | None, qmodel, names: list[str], recipe: dict | None, test) -> dict:
    """``quantization`` with ``heldout``: the quantized model's top-1 on the held-out set ``test`` (Brevitas in
    torch), checked disjoint from the clips the build calibrated and selected on."""
    from vidconv_edge.data.annotations import load_split
    from vidconv_edge.train.heldout import heldout_top1

    info = dict(quantization or {})
    used = []
    if info.get("data") and Path(info["data"]).is_dir():
        train, val, _ = load_split(info["data"])
        used = [(train + val, f"calibration or selection ({info['data']})")]
    spec = qmodel.input_spec
    meta = {"input_spec": {"frames": spec.frames, "size": spec.size}, "class_names": names, "recipe": recipe}
    info["heldout"] = heldout_top1(qmodel, meta, test, used)
    return info


def _to_int(values: np.ndarray, scale: float, what: str) -> np.ndarray:
    q = values / scale
    r = np.round(q)
    if np.abs(q - r).max() > 1e-3:
        raise UserError(f"{what} is not an integer multiple of its quantizer scale {scale:g}")
    return r.astype(np.float32)


def _nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def prepare_source(
    source: str | os.PathLike | None, board, out_dir: Path, part: str, samples: int, video=None, data=None,
    qat_epochs: int = 0, log=print, precision: str | None = None, test=None,
) -> BuildSource:
    """QONNX file(s) for ``part`` and their verification samples, under ``out_dir/qonnx``. A float model is
    quantized at ``precision`` (e.g. ``W8A8``), by default the board's."""
    from vidconv_edge.export.qonnx import export_qonnx, read_qonnx_metadata
    from vidconv_edge.quant.bits import make_bits, parse_part

    wanted = parts_of(part)
    qdir = out_dir / "qonnx"
    w, a = parse_part(precision) if precision else (board.weight_bits, board.act_bits)
    bits = make_bits(w, act_bits=a)
    if source is not None and Path(source).suffix == ".onnx":
        if test is not None:
            raise UserError("--test evaluates a checkpoint's quantized model: give the checkpoint, not a QONNX part")
        return _from_qonnx(Path(source), wanted, samples, video, read_qonnx_metadata)
    if source is not None and not Path(source).exists():
        raise UserError(f"model not found: {source}")
    qmodel, origin, names, quantization, recipe = load_quant_model(source, bits, out_dir, data, qat_epochs, log)
    if test is not None:
        log(f"held-out top-1 on {test}")
        quantization = add_heldout(quantization, qmodel, names, recipe, test)
    if precision and qmodel.bits.label() != bits.label():
        raise UserError(f"--precision {precision}: the quantized checkpoint is {qmodel.bits.label()}")
    if not getattr(qmodel, "supports_streaming", False):
        if part not in ("both", CLIP):
            raise UserError(f"model '{qmodel.name}' has no early/later split: it builds as one accelerator per clip "
                            f"(--part {CLIP}), not --part {part}")  # fmt: skip
        return _clip_source(qmodel, qdir / f"{CLIP}.onnx", origin, names, quantization, samples, video, recipe)
    if part == CLIP:
        raise UserError(f"--part {CLIP} builds whole-clip models (SEVNet); '{qmodel.name}' has early/later parts")
    spec = qmodel.input_spec
    files = {p: qdir / f"{p}.onnx" for p in PARTS}
    for p in PARTS:  # the later-net's input format is the early-net's output quantizer: export both
        export_qonnx(qmodel, files[p], p, class_names=names, recipe=recipe)
    build = BuildSource(
        qmodel.name, qmodel.bits.label(), origin, layout=tuple(qmodel.layout), img_size=spec.size, frames=spec.frames,
        class_names=names, float_spec=qmodel.float_input_spec.to_dict(), quantization=quantization,
        part_formats={p: _formats(read_qonnx_metadata(files[p])) for p in PARTS}, frame_rate=recipe_frame_rate(recipe),
    )  # fmt: skip
    frames_needed = samples + spec.frames - 1
    frames = video_frames(video, spec.size, frames_needed)
    feats = run_reference(files["early"], frames)
    e_scale, e_dtype = linked_format(files["early"], files["later"])
    if "early" in wanted:
        expected = _nhwc(_to_int(feats[:samples], e_scale, "the early-net output"))
        build.parts["early"] = PartSource(
            "early", files["early"], _nhwc(frames[:samples].astype(np.float32)), expected,
            reference=reference_info(files["early"], frames[:samples], expected, e_scale),
        )  # fmt: skip
    if "later" in wanted:
        from vidconv_edge.models.layers import frames_to_collage

        windows = np.concatenate([feats[i : i + spec.frames] for i in range(samples)])
        collages = frames_to_collage(torch.from_numpy(windows), qmodel.layout).numpy()
        logits = run_reference(files["later"], collages)
        l_scale, _ = _output_format(files["later"])
        expected = _to_int(logits, l_scale, "the logits")
        build.parts["later"] = PartSource(
            "later", files["later"], _nhwc(_to_int(collages, e_scale, "the collage")), expected,
            input_scale=e_scale, input_datatype=e_dtype,
            reference=reference_info(files["later"], collages, expected, l_scale),
        )  # fmt: skip
    return build


def _clip_source(qmodel, path: Path, origin: str, names: list[str], quantization, samples: int, video,
                 recipe: dict | None = None) -> BuildSource:  # fmt: skip
    """A whole-clip model's FPGA form (``quant.sevnet_fpga``) as one part: its QONNX file, and ``samples`` clips
    of the video stacked as the accelerator takes them (NHWC uint8) with the reference logits (integers)."""
    from vidconv_edge.export.qonnx import export_qonnx, read_qonnx_metadata
    from vidconv_edge.quant.sevnet_fpga import fpga_form

    fpga = fpga_form(qmodel)
    export_qonnx(qmodel, path, "fpga", class_names=names, recipe=recipe)
    spec = qmodel.input_spec
    build = BuildSource(
        qmodel.name, qmodel.bits.label(), origin, layout=(1, 1), img_size=spec.size, frames=spec.frames,
        class_names=names, float_spec=qmodel.float_input_spec.to_dict(), quantization=quantization,
        part_formats={CLIP: _formats(read_qonnx_metadata(path))}, frame_rate=recipe_frame_rate(recipe),
    )  # fmt: skip
    frames = video_frames(video, spec.size, samples * spec.frames)
    clips = torch.from_numpy(frames).float().reshape(samples, spec.frames, 3, spec.size, spec.size)
    stacked = fpga.stack(clips).numpy()
    scale, _ = _output_format(path)
    expected = _to_int(run_reference(path, stacked), scale, "the logits")
    build.parts[CLIP] = PartSource(
        CLIP, path, _nhwc(stacked.astype(np.float32)), expected,
        reference={**reference_info(path, stacked, expected, scale),
                   "inputs": f"{samples} clip(s) of the video, frames stacked along H with pitch {fpga.pitch}"},
    )  # fmt: skip
    return build


def linked_format(early: Path, later: Path) -> tuple[float, str]:
    """(scale, datatype) of the early-net's output quantizer, checked against the later-net's ``input_quant``."""
    from vidconv_edge.export.qonnx import read_qonnx_metadata

    scale, dtype = _output_format(early)
    fmt = read_qonnx_metadata(later).get("input_quant") or {}
    if (fmt.get("scale"), fmt.get("datatype"), fmt.get("zero_point")) != (scale, dtype, 0.0):
        raise UserError(
            f"{later} expects input {fmt.get('datatype')} x {fmt.get('scale')} (zero point {fmt.get('zero_point')}), "
            f"but {early} outputs {dtype} x {scale}: export both parts from the same quantized model"
        )
    return scale, dtype


def _output_format(path: Path) -> tuple[float, str]:
    from qonnx.core.modelwrapper import ModelWrapper

    from vidconv_edge.hw.steps_qonnx import quant_output_format

    return quant_output_format(ModelWrapper(str(path)))


def _from_qonnx(path: Path, wanted, samples: int, video, read_meta) -> BuildSource:
    """An early-net QONNX file (verified on video frames) or a later-net one (verified on random integer
    collages in its ``input_quant`` format: the later-net alone has no video path)."""
    meta = read_meta(path)
    part = meta.get("part")
    if part not in PARTS:
        raise UserError(f"{path} holds the '{part}' part: build-fpga builds early or later parts")
    if wanted != (part,):
        raise UserError(f"{path} holds only the {part}-net: use --part {part}")
    q = meta["quant"]
    bits = f"W{q['weight_bits'][part]}A{q['act_bits'][part]}"
    spec = meta["input_spec"]
    size = int(spec["size"])
    build = BuildSource(
        meta.get("model", "?"), bits, f"QONNX file {path.name}", layout=tuple(spec.get("layout") or (3, 3)),
        img_size=size, frames=int(spec["frames"]), class_names=list(meta.get("class_names", [])),
        float_spec=q.get("float_input_spec", {}), part_formats={part: _formats(meta)},
        frame_rate=recipe_frame_rate(meta.get("recipe")),
    )  # fmt: skip
    scale, _ = _output_format(path)
    if part == "early":
        frames = video_frames(video, size, samples)
        expected = _nhwc(_to_int(run_reference(path, frames), scale, "the early-net output"))
        build.parts["early"] = PartSource(
            "early", path, _nhwc(frames.astype(np.float32)), expected,
            reference=reference_info(path, frames, expected, scale),
        )  # fmt: skip
        return build
    fmt = meta.get("input_quant")
    if not fmt:
        raise UserError(f"{path} has no input_quant metadata (the collage's integer format): re-export it")
    ints = random_integers(fmt, [samples, *_input_shape(path)[1:]])
    collages = ints * fmt["scale"]
    expected = _to_int(run_reference(path, collages), scale, "the logits")
    info = reference_info(path, collages, expected, scale)
    build.parts["later"] = PartSource(
        "later", path, _nhwc(ints.astype(np.float32)), expected, input_scale=fmt["scale"],
        input_datatype=fmt["datatype"], reference={**info, "inputs": "random integer collages (seed 0)"},
    )  # fmt: skip
    return build


def _formats(meta: dict) -> dict:
    return {"input": meta.get("input_quant") or {}, "output": meta.get("output_quant") or {}}


def random_integers(fmt: dict, shape: list[int], seed: int = 0) -> np.ndarray:
    """Uniform integers of the ``input_quant`` format ``fmt`` (bit width, signed, narrow)."""
    bits, signed, narrow = fmt["bit_width"], fmt["signed"], fmt.get("narrow", False)
    low = (-(2 ** (bits - 1)) + int(narrow)) if signed else 0
    high = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    return np.random.default_rng(seed).integers(low, high, size=shape, endpoint=True).astype(np.float64)


def _input_shape(path: Path) -> list[int]:
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value for d in dims]
