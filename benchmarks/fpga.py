"""FPGA builds side by side: precision x widths x board -> LUT, BRAM, DSP, fps, accuracy, build time.

Every row is one ``build_fpga`` run (the default flow: for ``vic_edge`` early- and later-net as one merged design,
for ``sevnet_edge`` its one clip accelerator; estimates, verified python execution) of a float model quantized at
that precision by the build itself (PTQ on the validation data, or ``--qat-epochs`` of QAT). Printed per row:
  * LUT / BRAM18 / URAM / DSP: FINN's estimate and the use of the board with the stated margin;
  * per part: early frames/s and later collages/s (vic_edge) or clips/s (sevnet_edge), and the streaming
    pipeline fps at the board's clock (frames/s for vic_edge, clips/s for sevnet_edge);
  * limit ratio: pipeline fps / the dataflow limit of one input pixel per clock (clock / pixels per frame);
  * val top-1 of the float model and of the quantized one (the accuracy cost of the precision): the bundled
    checkpoint on generated camera-motion clips of the training footage by default (held-out accuracy:
    benchmarks/accuracy.py); for other widths the weights are a seeded init (untrained: the accuracy columns
    show "-"), unless ``--checkpoint`` gives trained ones;
  * verified: the HW graph equals the QONNX model bit for bit (else the number of differing values);
  * the build's own run time (quantization + FINN flow).

    python benchmarks/fpga.py [--model vic_edge|sevnet_edge] [--boards pynq-z2 zcu104] [--precisions W8A4 W8A8]
                              [--widths 16,32,64,128] [--checkpoint FLOAT.pt] [--data DIR] [--qat-epochs N]
                              [--target-fps 30] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch


def float_checkpoint(out: Path, model_name: str, widths, checkpoint: str | None) -> tuple[Path, bool]:
    """(float checkpoint, trained): ``checkpoint``, the bundled model (vic_edge.pt when the widths are its own,
    sevnet_edge.pt), else a seeded init (``widths``: vic_edge's)."""
    from vidconv_edge.assets import ASSETS
    from vidconv_edge.checkpoint import load_checkpoint, save_checkpoint
    from vidconv_edge.data.camera_motion import CAMERA_CLASSES
    from vidconv_edge.models import create_model

    if checkpoint:
        return Path(checkpoint), True
    bundled = ASSETS / f"{model_name}.pt"
    if bundled.is_file() and (model_name != "vic_edge" or tuple(load_checkpoint(bundled)["config"]["dims"]) == tuple(widths)):
        return bundled, True
    torch.manual_seed(0)
    options = {"dims": tuple(widths)} if model_name == "vic_edge" else {}
    model = create_model(model_name, num_classes=len(CAMERA_CLASSES), **options)
    return save_checkpoint(out / "seeded.pt", model, list(CAMERA_CLASSES)), False


def run(args) -> list[dict]:
    from vidconv_edge.hw.flow import build_fpga

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt, trained = float_checkpoint(tmp, args.model, args.widths, args.checkpoint)
        data = args.data
        for precision in args.precisions:
            for board in args.boards:
                out = tmp / f"{precision}_{board}"
                if data is None and (tmp / "data").is_dir():
                    data = tmp / "data"  # the synthetic set the first build wrote, reused
                t0 = time.perf_counter()
                with contextlib.redirect_stdout(sys.stderr):  # FINN prints its progress: keep --json output clean
                    r = build_fpga(ckpt, board, out, target_fps=args.target_fps,  # the default flow: merged design
                                   strict_verify=False, data=data, qat_epochs=args.qat_epochs, precision=precision,
                                   log=lambda _m: None)  # fmt: skip
                if data is None:
                    (out / "data").rename(tmp / "data")
                parts, q = r["parts"], r["quantization"]
                rows.append({
                    "model": r["model"], "precision": precision, "board": board,
                    "widths": list(args.widths) if r["model"] == "vic_edge" else None,
                    "LUT": r["total"]["LUT"], "BRAM_18K": r["total"]["BRAM_18K"], "DSP": r["total"]["DSP"],
                    "URAM": r["total"]["URAM"],
                    "use": r["utilization"], "fits": r["fits"], "verified": r["verified"],
                    "per_part_per_s": {name: part["estimated_fps"] for name, part in parts.items()},
                    "pipeline_fps": r["estimated_fps"], "dataflow_limit_fps": r["dataflow_limit_fps"],
                    "mismatches": sum(p["io"]["verification"]["mismatches"] for p in parts.values()),
                    "limit_ratio": r["estimated_fps"] / r["dataflow_limit_fps"],
                    "float_top1": q["float_top1"] if trained else None,
                    "quant_top1": q["quant_top1"] if trained else None,
                    "val_videos": q["val_videos"], "build_s": round(time.perf_counter() - t0, 1),
                })  # fmt: skip
    return rows


def print_rows(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="edge models on FPGA boards (FINN estimates + stated margin)")
    cols = ("model", "precision", "board", "LUT (use)", "BRAM18 (use)", "URAM (use)", "DSP (use)", "fits",
            "per part /s", "pipeline fps", "limit ratio", "float top-1", "quant top-1", "verified", "build s")  # fmt: skip
    for c in cols:
        t.add_column(c, justify="left" if c in ("model", "precision", "board", "per part /s") else "right")
    acc = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for r in rows:
        u = r["use"]
        t.add_row(
            r["model"], r["precision"], r["board"], f"{r['LUT']:,.0f} ({u['LUT']:.0%})",
            f"{r['BRAM_18K']:.0f} ({u['BRAM_18K']:.0%})", f"{r['URAM']:.0f} ({u['URAM']:.0%})" if "URAM" in u else "-",
            f"{r['DSP']:.0f} ({u['DSP']:.0%})", str(r["fits"]),
            " · ".join(f"{name} {v:.1f}" for name, v in r["per_part_per_s"].items()),
            f"{r['pipeline_fps']:.1f}", f"{r['limit_ratio']:.4f}", acc(r["float_top1"]), acc(r["quant_top1"]),
            "yes" if r["verified"] else f"no ({r['mismatches']})", f"{r['build_s']:.0f}",
        )  # fmt: skip
    Console(width=200).print(t)
    if rows:
        widths = f"widths {tuple(rows[0]['widths'])}; " if rows[0]["widths"] else ""
        print(f"{widths}val top-1 on {rows[0]['val_videos']} videos "
              "(quant: PTQ, or QAT with --qat-epochs); limit ratio = pipeline fps / (clock / pixels per frame)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("vic_edge", "sevnet_edge"), default="vic_edge")
    p.add_argument("--boards", nargs="+", default=["pynq-z2", "zcu104"])
    p.add_argument("--precisions", nargs="+", default=["W8A4", "W8A8"])
    p.add_argument("--widths", type=lambda s: tuple(int(x) for x in s.split(",")), default=(16, 32, 64, 128),
                   help="vic_edge stage widths")
    p.add_argument("--checkpoint",
                   help="float checkpoint of --model (default: the bundled vic_edge, or a seeded init)")
    p.add_argument("--data", help="dataset folder for calibration and val top-1 (default: a generated synthetic set)")
    p.add_argument("--qat-epochs", type=int, default=0)
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
