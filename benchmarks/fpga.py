"""FPGA builds side by side: precision x widths x board -> LUT, BRAM, DSP, fps, accuracy, build time.

For every combination one ``build_fpga`` run (early- and later-net, up to the estimate reports and the
verified python execution) of ``vic_edge`` quantized (PTQ, calibrated on the sample video) at that
precision. Printed per row:
  * LUT / BRAM18 / DSP: FINN's estimate of both parts and the use of the board with the stated margin;
  * early fps, later collages/s and the streaming pipeline fps at the board's clock;
  * limit ratio: pipeline fps / the dataflow limit of one input pixel per clock (clock / pixels per frame);
  * val top-1 of the quantized model when --data is given (PTQ, no QAT here), else "-";
  * the build's own run time.

    python benchmarks/fpga.py [--boards pynq-z2 zcu104] [--precisions W8A4 W8A8] [--widths 16,32,64,128]
                              [--size 96] [--checkpoint FLOAT.pt] [--data DIR] [--target-fps 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch


def quantized_checkpoint(out: Path, precision: str, widths, size: int, checkpoint: str | None) -> Path:
    """A PTQ vic_edge checkpoint at ``precision`` (seeded init, or the float ``checkpoint``)."""
    from vidconv_edge.hw.source import calibrated_for_board
    from vidconv_edge.models import create_model
    from vidconv_edge.quant.bits import make_bits, parse_part
    from vidconv_edge.quant.model import float_model_from_checkpoint, save_quant_checkpoint

    w, a = parse_part(precision)
    if checkpoint:
        float_model, ckpt = float_model_from_checkpoint(checkpoint)
        names = list(ckpt["class_names"])
    else:
        torch.manual_seed(0)
        float_model, names = create_model("vic_edge", dims=tuple(widths), img_size=size), [str(i) for i in range(10)]
    qmodel = calibrated_for_board(float_model.eval(), make_bits(w, act_bits=a))
    path = out / f"vic_edge_{precision}.pt"
    save_quant_checkpoint(path, qmodel, names)
    return path


def val_top1(qckpt: Path, data: str | None) -> float | None:
    if not data:
        return None
    from vidconv_edge.data import build_datasets
    from vidconv_edge.quant.model import quant_model_from_checkpoint
    from vidconv_edge.train.evaluate import evaluate

    qmodel, _ = quant_model_from_checkpoint(qckpt)
    _, val_ds, _ = build_datasets(data, qmodel.float_input_spec, seed=0)
    return float(evaluate(qmodel, val_ds, batch_size=4, device="cpu", progress=False)["top1"])


def run(args) -> list[dict]:
    from vidconv_edge.hw.flow import build_fpga

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for precision in args.precisions:
            ckpt = quantized_checkpoint(tmp, precision, args.widths, args.size, args.checkpoint)
            top1 = val_top1(ckpt, args.data)
            for board in args.boards:
                t0 = time.perf_counter()
                r = build_fpga(ckpt, board, tmp / f"{precision}_{board}", target_fps=args.target_fps,
                               until="generate_estimate_reports", strict_verify=False, log=lambda _m: None)  # fmt: skip
                parts = r["parts"]
                rows.append({
                    "precision": precision, "widths": list(args.widths), "board": board,
                    "LUT": r["total"]["LUT"], "BRAM_18K": r["total"]["BRAM_18K"], "DSP": r["total"]["DSP"],
                    "use": r["utilization"], "fits": r["fits"], "verified": r["verified"],
                    "early_fps": parts["early"]["estimated_fps"], "later_per_s": parts["later"]["estimated_fps"],
                    "pipeline_fps": r["estimated_fps"], "dataflow_limit_fps": r["dataflow_limit_fps"],
                    "limit_ratio": r["estimated_fps"] / r["dataflow_limit_fps"], "val_top1": top1,
                    "build_s": round(time.perf_counter() - t0, 1),
                })  # fmt: skip
    return rows


def print_rows(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="vic_edge on FPGA boards (FINN estimates + stated margin)")
    cols = ("precision", "board", "LUT (use)", "BRAM18 (use)", "DSP (use)", "fits", "early fps", "later /s",
            "pipeline fps", "limit ratio", "val top-1", "verified", "build s")  # fmt: skip
    for c in cols:
        t.add_column(c, justify="left" if c in ("precision", "board") else "right")
    for r in rows:
        u = r["use"]
        t.add_row(
            r["precision"], r["board"], f"{r['LUT']:,.0f} ({u['LUT']:.0%})", f"{r['BRAM_18K']:.0f} ({u['BRAM_18K']:.0%})",
            f"{r['DSP']:.0f} ({u['DSP']:.0%})", str(r["fits"]), f"{r['early_fps']:.1f}", f"{r['later_per_s']:.1f}",
            f"{r['pipeline_fps']:.1f}", f"{r['limit_ratio']:.4f}",
            "-" if r["val_top1"] is None else f"{r['val_top1']:.3f}", str(r["verified"]), f"{r['build_s']:.0f}",
        )  # fmt: skip
    Console().print(t)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--boards", nargs="+", default=["pynq-z2", "zcu104"])
    p.add_argument("--precisions", nargs="+", default=["W8A4", "W8A8"])
    p.add_argument("--widths", type=lambda s: tuple(int(x) for x in s.split(",")), default=(16, 32, 64, 128))
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--checkpoint", help="float vic_edge checkpoint (default: seeded untrained weights)")
    p.add_argument("--data", help="dataset folder for the quantized model's val top-1")
    p.add_argument("--target-fps", type=float, default=30.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = run(args)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
