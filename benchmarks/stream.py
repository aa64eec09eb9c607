"""Per-frame latency of the cached stream (early-net on the new frame + later-net on the collage)
against ``--recompute`` (the whole model on the L-frame window), measured side by side in one run, next
to the theoretical speed-up from MACs: (L * early + later) / (early + later).
Rows: vic_edge with PyTorch and with ONNX Runtime (its parts exported to a temp folder), vic_tiny
with PyTorch.

Method (robust on a shared CPU): the windows come in blocks of 8; per block, the 8 cached steps run
back to back, then the 8 recomputes of the same windows (the order alternates per block), each
checked against the other. The speed-up is the median over blocks of median(recompute) /
median(cached). Back to back, because that is how each path runs when deployed: interleaving the two
per window makes the small cached step start on caches the whole-clip run has just evicted (measured
on the same code: ONNX Runtime vic_edge 84-91% of theory interleaved per window, 95-101% in blocks).
Neighbouring blocks see the same machine load.

Several sources (``--sources``): the aggregate throughput (all frames of all sources / wall time) of 1, 2 and 4
video files streamed at once on one backend (``run_streams``: a ring per source, one model) against one source,
for the bundled vic_edge on torch, onnxruntime and finn-sim (its default pynq-z2 build, made in a temp folder
unless ``--build`` gives one); every source's outputs are checked equal to its single-source run.

Memory over a long stream (``--memory``): a synthetic live-length stream of small frames (a non-live source of
32x32 frames, no decoding) through ``run_stream`` with the smallest model (vic_edge at 32x32, torch, 1 thread),
printing the process's resident set size after 1k, 10k and 100k frames and its growth: the engine keeps bounded
statistics, so a stream that runs for days on a 512 MB board stays flat.

    python benchmarks/stream.py [--edge-steps 400] [--tiny-steps 30] [--threads 1] [--tiny-size 128] [--json OUT]
    python benchmarks/stream.py --sources [--source-frames 150] [--build DIR] [--backends torch onnxruntime finn-sim]
    python benchmarks/stream.py --memory [--memory-frames 1000 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from vidconv_edge.export.onnx import export_onnx
from vidconv_edge.io import atomic_path
from vidconv_edge.models import create_model
from vidconv_edge.stream import StreamEngine
from vidconv_edge.stream.backends.onnx_backend import OnnxBackend
from vidconv_edge.stream.backends.torch_backend import TorchBackend
from vidconv_edge.stream.ring import FrameRing
from vidconv_edge.stream.sources import Frame, Source


def macs(fn, x: torch.Tensor) -> int:
    """Multiply-accumulates of ``fn(x)`` (FlopCounterMode counts 2 FLOPs per MAC)."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        fn(x)
    return counter.get_total_flops() // 2


def onnx_backend(model: torch.nn.Module, folder: Path, threads: int) -> OnnxBackend:
    """The model's early/later/full parts exported to ``folder``, run by ONNX Runtime."""
    for part in ("early", "later", "full"):
        export_onnx(model, folder / f"{part}.onnx", part=part)
    return OnnxBackend(folder, threads=threads)


def bench(name: str, model: torch.nn.Module, steps: int, backend=None, warmup: int = 8, block: int = 8) -> dict:
    spec = model.input_spec
    length, size = spec.frames, spec.size
    early = macs(model.forward_early, torch.zeros(1, 3, size, size))
    collage_shape = model.collage(torch.zeros(length, *model.early_shape())).shape
    later = macs(model.forward_later, torch.zeros(collage_shape))
    backend = backend or TorchBackend(model)
    engine = StreamEngine(backend)
    window = FrameRing(length)
    rng = np.random.default_rng(0)
    for i in range(length - 1 + warmup):  # fill the ring and warm both paths up
        frame = rng.standard_normal((3, size, size), dtype=np.float32)
        window.push(frame)
        engine.push(frame, i, 0.0)
        if window.ready:
            backend.full(window.window()[None])
    cached, full, ratios = [], [], []
    for b in range(-(-steps // block)):
        frames = rng.standard_normal((block, 3, size, size), dtype=np.float32)
        clips = []
        for frame in frames:  # the windows of this block, prepared before any timing
            window.push(frame)
            clips.append(window.window()[None])
        times: dict[str, list[float]] = {"cached": [], "full": []}
        preds, refs = [], []
        for path in ("cached", "full") if b % 2 == 0 else ("full", "cached"):
            for j in range(block):  # each path back to back, as it runs when deployed
                t0 = time.perf_counter()
                if path == "cached":
                    preds.append(engine.push(frames[j], j, 0.0))
                else:
                    refs.append(backend.full(clips[j]))
                times[path].append((time.perf_counter() - t0) * 1e3)
        for pred, ref in zip(preds, refs):
            assert np.abs(ref[0] - pred.logits).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))
        cached += times["cached"]
        full += times["full"]
        ratios.append(np.median(times["full"]) / np.median(times["cached"]))
    theory = (length * early + later) / (early + later)
    measured = float(np.median(ratios))
    return {
        "model": name,
        "backend": backend.name,
        "frames": length,
        "size": size,
        "early_mmacs": early / 1e6,
        "later_mmacs": later / 1e6,
        "cached_ms_p50": float(np.median(cached)),
        "recompute_ms_p50": float(np.median(full)),
        "speedup_measured": measured,
        "speedup_theory": theory,
        "ratio": measured / theory,
    }


def source_files(folder: Path, count: int, frames: int) -> list[Path]:
    """``count`` different real MP4s of ``frames`` frames: the bundled sample video's frames, shifted per file."""
    import av

    from vidconv_edge.assets import sample_video
    from vidconv_edge.data.synth import encode_mp4

    with av.open(str(sample_video())) as c:
        base = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    files = []
    for k in range(count):
        idx = (np.arange(frames) + 7 * k) % len(base)
        files.append(folder / f"cam{k}.mp4")
        encode_mp4(files[-1], base[idx], "libx264")
    return files


def multi_source_rows(backends: list[str], counts: list[int], frames: int, build: Path | None, folder: Path) -> list[dict]:
    """Aggregate fps of N sources on one backend vs one source; outputs checked equal per source."""
    from vidconv_edge.assets import default_checkpoint
    from vidconv_edge.models.loading import model_from_checkpoint
    from vidconv_edge.stream import open_backend, run_streams

    files = source_files(folder, max(counts), frames)
    rows = []
    for name in backends:
        if name == "torch":
            be = open_backend(default_checkpoint(), "torch")
        elif name == "onnxruntime":
            model, _ = model_from_checkpoint(default_checkpoint())
            be = onnx_backend(model.eval(), folder / "onnx", 1)
        else:
            if build is None:
                from vidconv_edge.hw.flow import build_fpga

                build = folder / "build"
                build_fpga(None, "pynq-z2", build, log=lambda _m: None)
            be = open_backend(build, "finn-sim")
        reference: dict = {}
        base_fps = None
        for n in counts:
            got: dict = {}
            summary = run_streams(files[:n], be, progress=False,
                                  on_prediction=lambda s, p: got.setdefault(s, []).append(p.logits))  # fmt: skip
            for src, logits in got.items():
                ref = reference.setdefault(src, logits)
                assert all(np.array_equal(a, b) for a, b in zip(ref, logits)), f"{src}: outputs differ from its first run"
            fps = summary["total"]["frames_in"] / summary["elapsed_s"]
            base_fps = base_fps or fps
            rows.append({"backend": name, "sources": n, "frames": summary["total"]["frames_in"], "aggregate_fps": fps,
                         "per_source_fps": fps / n, "vs_one_source": fps / base_fps,
                         "latency_ms_p50": summary["total"]["latency_ms_p50"], "latency_ms_p95": summary["total"]["latency_ms_p95"]})  # fmt: skip
    return rows


def rss_mb() -> float:
    """The process's resident set size now, MB (psutil, else ``VmRSS`` of /proc/self/status)."""
    try:
        import psutil
    except ImportError:
        status = Path("/proc/self/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024
    return psutil.Process().memory_info().rss / 2**20


class SyntheticSource(Source):
    """``total`` frames of 32x32 RGB cycling through 16 random images (no decoding): a long stream, cheaply."""

    name = "synthetic"

    def __init__(self, total: int, size: int = 32):
        self.total, self.fps = total, 30.0
        self._images = np.random.default_rng(0).integers(0, 256, (16, size, size, 3), dtype=np.uint8)

    def frames(self):
        for i in range(self.total):
            yield Frame(i, i / self.fps, self._images[i % len(self._images)])


def memory_rows(marks: list[int]) -> list[dict]:
    """RSS after each of ``marks`` frames of one stream (vic_edge at 32x32 on torch)."""
    from vidconv_edge.stream import run_stream

    model = create_model("vic_edge", img_size=32).eval()
    rows: list[dict] = []

    def sample(pred) -> None:
        if pred.frame + 1 in marks:
            rows.append({"frames": pred.frame + 1, "rss_mb": rss_mb()})

    summary = run_stream(SyntheticSource(max(marks)), TorchBackend(model), progress=False, on_prediction=sample)
    assert summary["frames_in"] == max(marks) and summary["outputs"] == max(marks) - model.input_spec.frames + 1
    return rows


def print_memory(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="resident memory over one long stream (vic_edge 9x32², torch, 1 thread)")
    for col in ("frames", "RSS MB", f"growth since {rows[0]['frames']:,} frames"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(f"{r['frames']:,}", f"{r['rss_mb']:.1f}", f"{r['rss_mb'] - rows[0]['rss_mb']:+.1f} MB")
    Console(width=200).print(table)


def print_multi(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="several sources on one backend: aggregate throughput vs one source")
    for col in ("backend", "sources", "frames", "aggregate fps", "per source fps", "vs one source", "latency p50 / p95 ms"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["backend"], str(r["sources"]), str(r["frames"]), f"{r['aggregate_fps']:.1f}", f"{r['per_source_fps']:.1f}",
                      f"{r['vs_one_source']:.2f}x", f"{r['latency_ms_p50']:.2f} / {r['latency_ms_p95']:.2f}")  # fmt: skip
    Console(width=200).print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", action="store_true", help="measure 1, 2, 4 sources on one backend instead")
    ap.add_argument("--memory", action="store_true", help="measure resident memory over one long stream instead")
    ap.add_argument("--memory-frames", type=int, nargs="+", default=[1_000, 10_000, 100_000],
                    help="frame counts to report RSS at (--memory)")  # fmt: skip
    ap.add_argument("--source-frames", type=int, default=150, help="frames per source (--sources)")
    ap.add_argument("--backends", nargs="+", default=["torch", "onnxruntime", "finn-sim"], help="backends (--sources)")
    ap.add_argument("--build", type=Path, help="build-fpga folder for finn-sim (--sources; default: build one)")
    ap.add_argument("--edge-steps", type=int, default=400, help="timed windows for vic_edge")
    ap.add_argument("--tiny-steps", type=int, default=30, help="timed windows for vic_tiny")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: stable numbers on a shared CPU)")
    ap.add_argument("--tiny-size", type=int, default=128, help="vic_tiny input size (224 is the paper's)")
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")  # ONNX export chatter
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.memory:
        rows = memory_rows(sorted(args.memory_frames))
        print_memory(rows)
        if args.json:
            with atomic_path(args.json) as tmp:
                tmp.write_text(json.dumps(rows, indent=2) + "\n")
        return
    if args.sources:
        with tempfile.TemporaryDirectory() as tmp:
            rows = multi_source_rows(args.backends, [1, 2, 4], args.source_frames, args.build, Path(tmp))
        print_multi(rows)
        if args.json:
            with atomic_path(args.json) as tmp:
                tmp.write_text(json.dumps(rows, indent=2) + "\n")
        return
    models = {
        "vic_edge": create_model("vic_edge").eval(),
        "vic_tiny": create_model("vic_tiny", img_size=args.tiny_size).eval(),
    }
    rows = [bench("vic_edge", models["vic_edge"], args.edge_steps)]
    with tempfile.TemporaryDirectory() as tmp:
        ort = onnx_backend(models["vic_edge"], Path(tmp), args.threads)
        rows.append(bench("vic_edge", models["vic_edge"], args.edge_steps, backend=ort))
    rows.append(bench("vic_tiny", models["vic_tiny"], args.tiny_steps))

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"stream vs recompute, per frame (CPU, {args.threads} thread(s), medians)")
    for col in ("model", "backend", "input", "early MMACs", "later MMACs", "cached ms", "recompute ms",
                "speed-up measured", "speed-up theory", "measured/theory"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["model"], r["backend"], f"{r['frames']}x{r['size']}²", f"{r['early_mmacs']:.1f}", f"{r['later_mmacs']:.1f}",
            f"{r['cached_ms_p50']:.2f}", f"{r['recompute_ms_p50']:.2f}", f"{r['speedup_measured']:.2f}x",
            f"{r['speedup_theory']:.2f}x", f"{r['ratio'] * 100:.0f}%",
        )  # fmt: skip
    Console(width=200).print(table)
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
