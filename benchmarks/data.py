"""Data loading vs training: is the DataLoader or the model the bottleneck?

Measured side by side in one run, on one dataset (the synthetic set unless --data is given):
  * loader: clips/s a DataLoader delivers with 0, 1, 2 workers (training transforms, no model);
  * model: clips/s of the model's training step alone (normalize + forward + loss + backward +
    AdamW step) on batches already in memory;
  * pipeline: clips/s of the real loop (the loader feeding the training step) per worker count.
ratio = loader clips/s / model clips/s: above 1 the loader keeps up, below 1 it is the bottleneck.

    python benchmarks/data.py [--model vic_edge] [--data DIR] [--batch 8] [--batches 6] [--workers 0 1 2] [--json]
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

from vidconv_edge.data import build_datasets, normalize, write_synthetic_dataset
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
    return dict(
        model=model_name, frames=spec.frames, size=spec.size, batch=batch, batches=batches,
        threads=torch.get_num_threads(), data=str(data) if data else "synthetic", train_clips=len(ds),
        model_clips_per_s=model_cps, model_step_s=batch / model_cps, rows=rows,
    )  # fmt: skip


def print_table(res: dict) -> None:
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
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    a = p.parse_args(argv)
    res = run(a.model, a.data, a.batch, a.batches, a.workers, a.threads)
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
