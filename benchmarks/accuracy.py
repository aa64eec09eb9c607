"""Held-out accuracy of the bundled models along the whole path, on the same clips: float, the board's precision
(Brevitas: the bundled W8A4 form at W8A4, else what ``build-fpga`` quantized) and FINN's python execution of the
HW graph the build verified. Builds are kept in ``--work`` per request (``benchmarks/fpga.py``'s ``built_or_kept``:
the same folders as ``fpga.py --families`` with the same ``--work``).

The clips: ``synth --task camera-motion --heldout`` over the built-in held-out footage (a street video and four
photographs that no bundled model saw in training, checkpoint selection or calibration). Each with normal,
reversed and shuffled frames; ``reversed -> pair``: the share of paired-class clips that, played backwards, are
classified as the other class of their pair (pan_left <-> pan_right, tilt_up <-> tilt_down, zoom_in <-> zoom_out).
The 95% interval of each top-1 is Wilson's.

    python benchmarks/accuracy.py [--models vic_edge sevnet_edge] [--board pynq-z2] [--precision W8A4]
                                  [--test-per-class 60] [--work runs/accuracy] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from vidconv_edge.train.evaluate import ORDERS


def held_out_set(work: Path, per_class: int) -> Path:
    from vidconv_edge.apps.default_model import TEST_SEED
    from vidconv_edge.data.camera_motion import write_camera_motion_dataset

    out = work / "heldout"
    meta = out / "synth.json"
    if meta.is_file() and json.loads(meta.read_text()).get("per_class") == per_class:
        return out
    return write_camera_motion_dataset(out, ("builtin:test",), per_class=per_class, seed=TEST_SEED, heldout=True, overwrite=True)


def measure(model_name: str, checkpoint: Path, test: Path, work: Path, board: str, precision: str,
            hw_orders: tuple[str, ...] = ORDERS) -> dict:  # fmt: skip
    """One model: float, quantized and HW-graph results with the three frame orders, plus the build's numbers."""
    from vidconv_edge.apps.artifacts import HwGraphModel
    from vidconv_edge.apps.default_model import frame_order_results
    from vidconv_edge.models.loading import model_from_checkpoint
    from vidconv_edge.quant.model import quant_model_from_checkpoint
    from vidconv_edge.quant.pipeline import FINAL

    from fpga import built_or_kept

    from vidconv_edge.assets import bundled_quantized

    row: dict = {"model": model_name, "checkpoint": str(checkpoint), "board": board, "precision": precision}
    model, ckpt = model_from_checkpoint(checkpoint)
    t0 = time.time()
    row["float"] = frame_order_results(model, ckpt, test, test / "test.txt", 0)
    report, build, _ = built_or_kept(checkpoint, board, precision, 30.0, work / f"{model_name}_{board}")
    row["build"] = {k: report.get(k) for k in ("fits", "verified", "estimated_fps", "utilization", "design")}
    quantized = bundled_quantized(checkpoint, precision) or build / "quant" / FINAL  # what the build lowered
    qmodel, qckpt = quant_model_from_checkpoint(quantized)
    row["quantized"] = frame_order_results(qmodel, {**qckpt, "recipe": ckpt["recipe"]}, test, test / "test.txt", 0)
    hw = HwGraphModel(build)
    row["hw_graph"] = frame_order_results(hw, {**hw.meta, "recipe": ckpt["recipe"]}, test, test / "test.txt", 0, hw_orders)
    row["seconds"] = round(time.time() - t0, 1)
    return row


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    from vidconv_edge.train.metrics import wilson_interval

    table = Table(title="held-out camera-motion clips: top-1 (95% interval)")
    for col in ("model", "graph", "clips", "normal", "reversed", "shuffled", "reversed -> pair"):
        table.add_column(col, justify="left" if col in ("model", "graph") else "right")
    for row in rows:
        for kind in ("float", "quantized", "hw_graph"):
            r = row[kind]
            n = r["normal"]["num_samples"]
            lo, hi = wilson_interval(round(r["normal"]["top1"] * n), n)
            label = {"float": "float (torch)", "quantized": f"{row['precision']} (Brevitas)", "hw_graph": f"{row['precision']} HW graph (FINN)"}[kind]
            cell = lambda o: f"{100 * r[o]['top1']:.1f}%" if o in r else "-"  # noqa: E731
            pair = "-" if r.get("reverse_to_pair") is None else f"{100 * r['reverse_to_pair']:.1f}%"
            table.add_row(row["model"], label, str(n), f"{100 * r['normal']['top1']:.1f}% ({100 * lo:.1f}-{100 * hi:.1f})",
                          cell("reverse"), cell("shuffle"), pair)  # fmt: skip
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    from vidconv_edge.assets import ASSETS
    from vidconv_edge.errors import UserError

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["vic_edge", "sevnet_edge"])
    p.add_argument("--board", default="pynq-z2")
    p.add_argument("--precision", default="W8A4")
    p.add_argument("--test-per-class", type=int, default=60)
    p.add_argument("--work", default="runs/accuracy")
    p.add_argument("--hw-orders", nargs="+", choices=ORDERS, default=list(ORDERS),
                   help="frame orders run through the HW graph (FINN's python execution: ~1-2 s per clip)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON object per model")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    work = Path(args.work)
    try:
        test = held_out_set(work, args.test_per_class)
        rows = [measure(m, ASSETS / f"{m}.pt", test, work, args.board, args.precision, tuple(args.hw_orders)) for m in args.models]
    except UserError as e:
        print(f"accuracy: error: {e}", file=sys.stderr)
        return 2
    (work / "accuracy.json").write_text(json.dumps(rows, indent=1))
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
