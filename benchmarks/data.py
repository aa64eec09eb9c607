"""Data loading vs training: is the DataLoader or the model the bottleneck?

Measured side by side in one run, on one dataset (the synthetic set unless --data is given):
  * loader: clips/s a DataLoader delivers with 0, 1, 2 workers (training transforms, no model);
  * model: clips/s of the model's training step alone (normalize + forward + loss + backward +
    AdamW step) on batches already in memory;
  * pipeline: clips/s of the real loop (the loader feeding the training step) per worker count.
ratio = loader clips/s / model clips/s: above 1 the loader keeps up, below 1 it is the bottleneck.
  * decode: ms to read 9 uniformly sampled frames of a 10 s clip (250 frames, 340x256 H.264, the size of
    Kinetics' resized videos) decoding everything before them (sequential) vs seeking to the keyframe before
    each (seeking), on a short-GOP file (a keyframe every 12 frames) and a long-GOP one (one keyframe);
    the frame index is built on every read (a cold file, as in a first pass over a large set);
  * resize at decode: ms per evaluation clip (9 frames at 96x96) of a 1280x720 and a 640x480 H.264 file, with the
    full frames decoded and cropped vs decoded straight to the short side (data option ``resize_at_decode``),
    and the mean absolute pixel difference between the two clips.

    python benchmarks/data.py [--model vic_edge] [--data DIR] [--batch 8] [--batches 6] [--workers 0 1 2]
                              [--decode-only] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from vidconv_edge.data import build_datasets, decode, normalize, read_frames, write_synthetic_dataset
from vidconv_edge.models import create_model


def loader_rate(ds, batch: int, batches: int, workers: int) -> float:
    """Clips/s over ``batches`` batches after the first one (worker start-up excluded)."""
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - t0)


def train_step(model, opt, clips: torch.Tensor, labels: torch.Tensor) -> None:
    spec = model.input_spec
    loss = F.cross_entropy(model(normalize(clips, spec.mean, spec.std)), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def model_rate(model, opt, ds, batch: int, batches: int) -> float:
    """Clips/s of the training step alone on in-memory batches (2 warm-up steps)."""
    clips = torch.stack([ds[i % len(ds)][0] for i in range(batch)])
    labels = torch.arange(batch) % model.num_classes
    for _ in range(2):
        train_step(model, opt, clips, labels)
    t0 = time.perf_counter()
    for _ in range(batches):
        train_step(model, opt, clips, labels)
    return batches * batch / (time.perf_counter() - t0)


def pipeline_rate(model, opt, ds, batch: int, batches: int, workers: int) -> float:
    """Clips/s of the loader feeding the training step (first batch excluded)."""
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    it = iter(loader)
    train_step(model, opt, *next(it))
    t0 = time.perf_counter()
    for _ in range(batches):
        train_step(model, opt, *next(it))
    return batches * batch / (time.perf_counter() - t0)


def gop_video(path: Path, gop: int, frames: int = 250, width: int = 340, height: int = 256) -> Path:
    """H.264 (x264 defaults, B-frames) with a keyframe every ``gop`` frames; a textured scene panning 1 px/frame."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    scene = (rng.integers(0, 256, (height // 8 + frames, width // 8 + frames, 3), dtype=np.uint8)
             .repeat(8, 0).repeat(8, 1))  # fmt: skip
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        for i in range(frames):
            img = np.ascontiguousarray(scene[i : i + height, i : i + width])
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode())
    return path


def decode_rows(folder: Path, repeats: int = 10, count: int = 9) -> list[dict]:
    """Sequential vs seeking reads of ``count`` uniformly sampled frames, interleaved, best of ``repeats``."""
    import numpy as np

    rows = []
    for name, gop in (("short GOP (12)", 12), ("long GOP (250)", 250)):
        path = gop_video(folder / f"gop{gop}.mp4", gop)
        idx = np.linspace(0, 249, count).round().astype(int)
        times = {False: [], True: []}
        read_frames(path, idx, seek=False)  # warm-up: the file in the page cache, FFmpeg's threads started
        for r in range(repeats):
            for seek in (False, True) if r % 2 else (True, False):  # alternate which runs first
                decode._INDEXES.clear()
                t0 = time.perf_counter()
                read_frames(path, idx, seek=seek)
                times[seek].append(time.perf_counter() - t0)
        same = np.array_equal(read_frames(path, idx, seek=False), read_frames(path, idx, seek=True))
        seq, sk = min(times[False]) * 1000, min(times[True]) * 1000
        rows.append(dict(file=name, frames=count, sequential_ms=seq, seeking_ms=sk, speedup=seq / sk, same_frames=same))
    return rows


def resize_rows(folder: Path, repeats: int = 8) -> list[dict]:
    """Evaluation clips of large files: full-size decode + crop vs decode to the short side, interleaved, best of."""
    from vidconv_edge.data.dataset import VideoClipDataset

    rows = []
    for width, height in ((1280, 720), (640, 480)):
        path = gop_video(folder / f"{width}x{height}.mp4", 12, frames=60, width=width, height=height)
        sets = {r: VideoClipDataset([(str(path), 0)], clip_len=9, size=96, train=False, stride_range=(6, 6),
                                    resize_at_decode=r) for r in (False, True)}  # fmt: skip
        times = {False: [], True: []}
        for k in range(repeats):
            for r in (False, True) if k % 2 else (True, False):
                t0 = time.perf_counter()
                sets[r][0]
                times[r].append(time.perf_counter() - t0)
        diff = (sets[False][0][0].float() - sets[True][0][0].float()).abs().mean().item()
        full, fast = min(times[False]) * 1000, min(times[True]) * 1000
        rows.append(dict(file=f"{width}x{height}", full_ms=full, at_decode_ms=fast, speedup=full / fast, mean_abs_diff=diff))
    return rows


def run(model_name: str, data: Path | None, batch: int, batches: int, workers: list[int], threads: int | None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model(model_name).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    spec = model.input_spec
    with tempfile.TemporaryDirectory() as tmp:
        if data is None:
            per_class = max(2, -(-batch * (batches + 2) // (model.num_classes * 8 // 10)))
            data = write_synthetic_dataset(Path(tmp) / "synth", per_class=per_class, size=spec.size, progress=False)
        ds, _, names = build_datasets(data, spec)
        if len(ds) < batch * (batches + 1):
            raise SystemExit(f"{data}: {len(ds)} training clips, need {batch * (batches + 1)} for --batch/--batches")
        model_cps = model_rate(model, opt, ds, batch, batches)
        rows = []
        for w in workers:
            load_cps = loader_rate(ds, batch, batches, w)
            pipe_cps = pipeline_rate(model, opt, ds, batch, batches, w)
            rows.append(dict(workers=w, loader_clips_per_s=load_cps, pipeline_clips_per_s=pipe_cps, loader_over_model=load_cps / model_cps))
        decoding = decode_rows(Path(tmp))
        resizing = resize_rows(Path(tmp))
    return dict(
        model=model_name, frames=spec.frames, size=spec.size, batch=batch, batches=batches,
        threads=torch.get_num_threads(), data=str(data) if data else "synthetic", train_clips=len(ds),
        model_clips_per_s=model_cps, model_step_s=batch / model_cps, rows=rows, decode=decoding, resize=resizing,
    )  # fmt: skip


def print_table(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    if "rows" in res:
        print_loader_table(res)
    t = Table(title="reading 9 uniformly sampled frames of a 250-frame 340x256 H.264 file")
    for col in ("file", "sequential ms", "seeking ms", "sequential / seeking", "same frames"):
        t.add_column(col, justify="left" if col == "file" else "right")
    for r in res["decode"]:
        t.add_row(r["file"], f"{r['sequential_ms']:.1f}", f"{r['seeking_ms']:.1f}", f"{r['speedup']:.2f}x",
                  "yes" if r["same_frames"] else "NO")  # fmt: skip
    Console(width=200).print(t)
    t = Table(title="an evaluation clip (9 frames, 96x96) of a large H.264 file: full frames vs resize at decode")
    for col in ("file", "full-size ms", "resize at decode ms", "full / at decode", "mean |pixel diff|"):
        t.add_column(col, justify="left" if col == "file" else "right")
    for r in res["resize"]:
        t.add_row(r["file"], f"{r['full_ms']:.1f}", f"{r['at_decode_ms']:.1f}", f"{r['speedup']:.2f}x",
                  f"{r['mean_abs_diff']:.2f}")  # fmt: skip
    Console(width=200).print(t)


def print_loader_table(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"{res['model']} ({res['frames']}x{res['size']}^2), batch {res['batch']}, {res['threads']} torch threads: "
        f"training step {res['model_step_s'] * 1000:.0f} ms = {res['model_clips_per_s']:.1f} clips/s"
    )
    for col in ("workers", "loader clips/s", "loader / model", "loop clips/s", "bottleneck"):
        t.add_column(col, justify="right")
    for r in res["rows"]:
        neck = "data loading" if r["loader_over_model"] < 1 else "model"
        t.add_row(
            str(r["workers"]), f"{r['loader_clips_per_s']:.1f}", f"{r['loader_over_model']:.2f}x",
            f"{r['pipeline_clips_per_s']:.1f}", neck,
        )  # fmt: skip
    Console(width=200).print(t)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vic_edge")
    p.add_argument("--data", type=Path, default=None, help="data folder (default: a temporary synthetic set)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--batches", type=int, default=6, help="timed batches per measurement")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--decode-only", action="store_true", help="only the decoding rows (no model, no loader)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    a = p.parse_args(argv)
    if a.decode_only:
        with tempfile.TemporaryDirectory() as tmp:
            res = {"decode": decode_rows(Path(tmp)), "resize": resize_rows(Path(tmp))}
    else:
        res = run(a.model, a.data, a.batch, a.batches, a.workers, a.threads)
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
