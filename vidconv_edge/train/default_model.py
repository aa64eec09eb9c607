"""Rebuild the bundled default model ``vidconv_edge/assets/vic_edge.pt`` in one command:

    python -m vidconv_edge.train.default_model            # or: scripts/train_default.sh

1. writes the synthetic set (``vidconv-edge synth``: 10 motion classes that differ only in frame order),
2. trains ``vic_edge`` with ``configs/edge.yaml`` (seeded; CPU),
3. evaluates the best checkpoint on its validation split and on a second synthetic set with another
   seed, each with normal, reversed and shuffled frames (the model must use time),
4. saves the weights without training state (small) to the package assets, with the numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from vidconv_edge.assets import DEFAULT_CHECKPOINT
from vidconv_edge.checkpoint import model_from_checkpoint, save_checkpoint
from vidconv_edge.errors import UserError
from vidconv_edge.io import atomic_path
from vidconv_edge.train.config import CONFIG_DIR, load_recipe
from vidconv_edge.train.eval_data import eval_dataset
from vidconv_edge.train.evaluate import ORDERS, evaluate
from vidconv_edge.train.loop import train

TRAIN_SEED, TEST_SEED = 0, 1


def _synth(out: Path, per_class: int, seed: int) -> Path:
    """The synthetic set in ``out`` (reused if it was written with the same parameters)."""
    from vidconv_edge.data import write_synthetic_dataset

    meta = out / "synth.json"
    if meta.is_file():
        saved = json.loads(meta.read_text())
        if saved.get("per_class") == per_class and saved.get("seed") == seed:
            return out
    return write_synthetic_dataset(out, per_class=per_class, seed=seed, overwrite=True)


def build_default_model(work: Path, out: Path, per_class: int, test_per_class: int, epochs: int | None, workers: int) -> dict:
    """Synthesize, train, evaluate, export; returns the report (also written to ``work/report.json``)."""
    recipe = load_recipe(CONFIG_DIR / "edge.yaml")
    data = _synth(work / "synth", per_class, TRAIN_SEED)
    test = _synth(work / "synth_test", test_per_class, TEST_SEED)
    run = work / "run"
    if run.exists():
        shutil.rmtree(run)
    t0 = time.time()
    final = train(recipe, data, run, "vic_edge", epochs=epochs, workers=workers)
    train_time = time.time() - t0

    model, ckpt = model_from_checkpoint(run / "best.pt")
    results: dict = {"val": {}, "test": {}}
    for split, root, list_file in (("val", data, None), ("test", test, test / "val.txt")):
        ds = eval_dataset(root, ckpt, list_file)
        if split == "test":  # the whole second set: train.txt + val.txt
            ds = torch.utils.data.ConcatDataset([ds, eval_dataset(root, ckpt, test / "train.txt")])
        for order in ORDERS:
            r = evaluate(model, ds, order=order, batch_size=16, device="cpu", workers=workers)
            results[split][order] = {k: r[k] for k in ("top1", "top5", "mean_class_acc", "num_samples")}
    report = {
        "model": "vic_edge",
        "recipe": str(CONFIG_DIR / "edge.yaml"),
        "synth": {"per_class": per_class, "seed": TRAIN_SEED, "test_per_class": test_per_class, "test_seed": TEST_SEED},
        "epochs": final["epochs_done"],
        "best_epoch": ckpt["epoch"],
        "train_time_s": round(train_time, 1),
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()),
        **results,
    }
    save_checkpoint(out, model, ckpt["class_names"], recipe=ckpt["recipe"], epoch=ckpt["epoch"], metrics=ckpt["metrics"], report=report)
    report["checkpoint"] = str(out)
    report["checkpoint_bytes"] = out.stat().st_size
    with atomic_path(work / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    return report


def _print(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"vic_edge default model: {report['epochs']} epochs in {report['train_time_s'] / 60:.1f} min")
    table.add_column("set")
    for order in ORDERS:
        table.add_column(f"top-1 {order}", justify="right")
    for split in ("val", "test"):
        n = report[split]["normal"]["num_samples"]
        table.add_row(f"{split} ({n} videos)", *[f"{100 * report[split][o]['top1']:.1f}%" for o in ORDERS])
    Console(stderr=True).print(table)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vidconv_edge.train.default_model", description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="runs/default_model", help="folder for the synthetic sets and the run")
    p.add_argument("--out", default=str(DEFAULT_CHECKPOINT), help="where the checkpoint goes (default: the package asset)")
    p.add_argument("--per-class", type=int, default=300, help="synthetic training videos per class (80/20 train/val)")
    p.add_argument("--test-per-class", type=int, default=20, help="videos per class of the second (test) set")
    p.add_argument("--epochs", type=int, help="default: the recipe's")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 + one loader process suits 2 cores)")
    p.add_argument("--workers", type=int, default=1, help="data loading processes")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        report = build_default_model(Path(args.work), Path(args.out), args.per_class, args.test_per_class, args.epochs, args.workers)
    except UserError as e:
        print(f"default_model: error: {e}", file=sys.stderr)
        return 2
    _print(report)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
