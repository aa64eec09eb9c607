"""`vidconv-edge demo`: the whole path on the bundled default, each step through a command's public API.

Steps: model (params, MACs) -> export (float ONNX parts, ORT vs PyTorch) -> quantize (PTQ on a generated
synthetic set, QONNX + QDQ, float vs int8 agreement) -> fpga (build-fpga for a board up to estimates and
verification) -> stream (the sample video through the int8 ONNX parts, overlay + JSONL, latency vs recompute).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from vidconv_edge.errors import UserError
from vidconv_edge.io import atomic_path
from vidconv_edge.tables import print_table

STEPS = ("model", "export", "quantize", "fpga", "stream")


class DemoStepFailed(UserError):
    """A demo step failed; the message names the step and the reason."""


@dataclass
class DemoConfig:
    out: Path = Path("vidconv-edge-demo")
    source: Path | None = None  # video to stream (default: the bundled sample)
    checkpoint: Path | None = None  # float checkpoint (default: the bundled vic_edge)
    steps: tuple[str, ...] = STEPS
    board: str = "pynq-z2"
    quick: bool = False  # smaller calibration set, early-net-only FPGA build
    progress: bool = True  # bars on a terminal, progress lines in a log


@dataclass
class DemoContext:
    cfg: DemoConfig
    console: Console
    checkpoint: Path
    video: Path
    results: dict = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        p = self.cfg.out.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def parse_steps(text: str | None) -> tuple[str, ...]:
    if not text:
        return STEPS
    steps = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise UserError(f"unknown demo step(s) {unknown}; steps: {', '.join(STEPS)}")
    return tuple(s for s in STEPS if s in steps)


def _float_model(ctx: DemoContext):
    from vidconv_edge.models.loading import model_from_checkpoint

    model, ckpt = model_from_checkpoint(ctx.checkpoint)
    return model, list(ckpt["class_names"])


def _sample_clip(ctx: DemoContext, model) -> torch.Tensor:
    """A uint8 clip (1, T, 3, S, S) from the demo video, sampled as at test time."""
    from vidconv_edge.data import load_test_clip

    clip = load_test_clip(ctx.video, model.input_spec)
    return clip[None] if clip.dim() == 4 else clip[:1]


def step_model(ctx: DemoContext) -> dict:
    from vidconv_edge.models.analysis import profile_model, profile_table

    model, _ = _float_model(ctx)
    prof = profile_model(model)
    print_table(profile_table(prof, f"{model.name} ({ctx.checkpoint.name})"), ctx.console)
    ctx.console.print(f"MACs per streamed frame: {prof.macs_per_streamed_frame / 1e6:.1f}M (vs {prof.macs / 1e6:.1f}M per clip)")
    return {"params": prof.params, "macs_per_clip": prof.macs, "macs_per_streamed_frame": prof.macs_per_streamed_frame}


def step_export(ctx: DemoContext) -> dict:
    from vidconv_edge.data import normalize
    from vidconv_edge.export.onnx import export_onnx, run_onnx

    model, names = _float_model(ctx)
    for part in ("full", "early", "later"):
        summary = export_onnx(model, ctx.path("onnx", f"{part}.onnx"), part=part, class_names=names)
        ctx.artifacts[f"onnx_{part}"] = summary.path
    spec = model.input_spec
    clip = normalize(_sample_clip(ctx, model), spec.mean, spec.std)
    with torch.no_grad():
        ref = model(clip).numpy()
    full = run_onnx(ctx.artifacts["onnx_full"], clip.numpy())
    feats = np.concatenate([run_onnx(ctx.artifacts["onnx_early"], f[None].numpy()) for f in clip[0]])
    later = run_onnx(ctx.artifacts["onnx_later"], model.collage(torch.from_numpy(feats)).numpy())
    diff_full, diff_split = float(np.abs(full - ref).max()), float(np.abs(later - ref).max())
    ctx.console.print(f"ORT vs PyTorch max |diff|: full {diff_full:.2e}, early+collage+later {diff_split:.2e}")
    if max(diff_full, diff_split) > 1e-4:
        raise DemoStepFailed(f"ONNX Runtime differs from PyTorch by {max(diff_full, diff_split):.2e} (> 1e-4)")
    return {"ort_vs_torch_max_abs": max(diff_full, diff_split)}


def step_quantize(ctx: DemoContext) -> dict:
    from vidconv_edge.data import build_datasets
    from vidconv_edge.data.tasks import write_task_dataset
    from vidconv_edge.export.qdq import export_qdq
    from vidconv_edge.export.verify import verify_exports
    from vidconv_edge.quant.model import quant_model_from_checkpoint
    from vidconv_edge.quant.pipeline import quantize

    model, names = _float_model(ctx)
    data = ctx.cfg.out / "data"
    if not (data / "classes.txt").is_file():
        per_class = 3 if ctx.cfg.quick else 8
        # calibration clips of the checkpoint's own classes (the bundled model's: camera motion over training footage)
        write_task_dataset(data, names, per_class=per_class, seed=7, size=model.input_spec.size, progress=ctx.cfg.progress)
    calib = 2 if ctx.cfg.quick else 8
    summary = quantize(ctx.checkpoint, data, ctx.cfg.out / "quant", epochs=0, calib_batches=calib, progress=ctx.cfg.progress)
    qmodel, _ = quant_model_from_checkpoint(summary["files"]["quantized"])
    _, val, _ = build_datasets(data, model.input_spec)
    clips = torch.stack([val[i][0] for i in range(min(len(val), 8 if ctx.cfg.quick else 20))])
    check = verify_exports(model, qmodel, clips, ctx.path("quant", "export"), names)
    for part in ("full", "early", "later"):
        ctx.artifacts[f"int8_{part}"] = export_qdq(qmodel, ctx.path("int8", f"{part}.onnx"), part, class_names=names).path
    ctx.artifacts["quantized_checkpoint"] = summary["files"]["quantized"]
    ctx.artifacts["qonnx"] = check["files"]["qonnx"]
    agree = check["top1_agreement_pct"]
    ctx.console.print(
        f"val top-1: float {summary['float_top1']:.3f}, int8 {summary['quant_top1']:.3f}; "
        f"top-1 agreement float/QONNX {agree['float_vs_qonnx']:.0f}%, float/QDQ {agree['float_vs_qdq']:.0f}%, "
        f"QONNX/QDQ {agree['qonnx_vs_qdq']:.0f}%"
    )
    return {
        "float_top1": summary["float_top1"],
        "int8_top1": summary["quant_top1"],
        "agreement_pct": agree,
        "qonnx_vs_brevitas": check["qonnx_vs_brevitas"],
    }


def step_fpga(ctx: DemoContext) -> dict:
    from vidconv_edge.hw.flow import build_fpga

    part = "early" if ctx.cfg.quick else "both"
    data = ctx.cfg.out / "data"  # the quantize step's synthetic set: the build quantizes on it too
    report = build_fpga(ctx.checkpoint, ctx.cfg.board, ctx.cfg.out / "fpga", part=part, video=ctx.video,
                        data=data if (data / "classes.txt").is_file() else None,
                        log=ctx.console.print if ctx.cfg.progress else lambda _: None)  # fmt: skip
    ctx.artifacts["fpga_report"] = str(ctx.cfg.out / "fpga" / "report.json")
    if not report.get("verified"):
        raise DemoStepFailed("the HW graph is not bit-exact against the QONNX model")
    return {k: report.get(k) for k in ("board", "fits", "total", "capacity", "estimated_fps", "verified")}


def step_stream(ctx: DemoContext) -> dict:
    from vidconv_edge.stream.run import print_summary, run_stream

    if "int8_early" in ctx.artifacts:
        model, backend = Path(ctx.artifacts["int8_early"]).parent, "onnxruntime"
    elif "onnx_early" in ctx.artifacts:
        model, backend = Path(ctx.artifacts["onnx_early"]).parent, "onnxruntime"
    else:
        model, backend = ctx.checkpoint, "torch"
    jsonl, overlay = ctx.path("stream", "predictions.jsonl"), ctx.path("stream", "overlay.mp4")
    summary = run_stream(ctx.video, model, backend=backend, jsonl=jsonl, overlay=overlay, recompute=True,
                         progress=ctx.cfg.progress)
    print_summary(summary, ctx.console)
    ctx.artifacts.update(stream_jsonl=str(jsonl), stream_overlay=str(overlay))
    cached = summary["early_ms_p50"] + summary["later_ms_p50"]
    return {
        "backend": backend,
        "frames": summary.get("frames_in"),
        "outputs": summary.get("outputs"),
        "cached_ms_per_frame_p50": cached,
        "recompute_ms_per_frame_p50": summary["recompute_ms_p50"],
        "speedup": summary["recompute_ms_p50"] / cached if cached else None,
        "max_abs_diff_vs_recompute": summary.get("max_abs_diff"),
    }


STEP_FUNCS: dict[str, tuple[str, Callable[[DemoContext], dict]]] = {
    "model": ("the model", step_model),
    "export": ("float ONNX export, ORT vs PyTorch", step_export),
    "quantize": ("8-bit quantization, QONNX + QDQ", step_quantize),
    "fpga": ("FINN build for the board (estimates + verification)", step_fpga),
    "stream": ("streaming the sample video (frame buffer)", step_stream),
}


def run_demo(cfg: DemoConfig, console: Console | None = None) -> dict:
    """Run the chosen steps in order; a failing step raises DemoStepFailed naming it."""
    from vidconv_edge.assets import default_checkpoint, sample_video

    console = console or Console()
    ctx = DemoContext(cfg, console, Path(cfg.checkpoint or default_checkpoint()), Path(cfg.source or sample_video()))
    if not ctx.video.exists():
        raise UserError(f"video not found: {ctx.video}")
    cfg.out.mkdir(parents=True, exist_ok=True)
    timings = {}
    for i, step in enumerate(cfg.steps, 1):
        title, fn = STEP_FUNCS[step]
        console.rule(f"[bold]{i}/{len(cfg.steps)} {step}: {title}")
        start = time.perf_counter()
        try:
            ctx.results[step] = fn(ctx)
        except DemoStepFailed:
            raise
        except Exception as e:  # any failure is reported with its step
            raise DemoStepFailed(f"step '{step}' failed: {type(e).__name__}: {e}") from e
        timings[step] = round(time.perf_counter() - start, 1)
    summary = {"steps": list(cfg.steps), "seconds": timings, "results": ctx.results, "artifacts": ctx.artifacts}
    with atomic_path(cfg.out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=str))
    ctx.artifacts["summary"] = str(cfg.out / "summary.json")
    _print_summary(console, summary)
    return summary


def _print_summary(console: Console, summary: dict) -> None:
    table = Table(title="vidconv-edge demo")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("result")
    for step in summary["steps"]:
        res = summary["results"][step]
        text = ", ".join(f"{k}={_short(v)}" for k, v in res.items() if not isinstance(v, dict))
        table.add_row(step, str(summary["seconds"][step]), text)
    print_table(table, console)
    console.print("written:")
    for name, path in summary["artifacts"].items():
        console.print(f"  {name:22s} {path}")


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
