"""Accuracy of several bit-width mixes of one float checkpoint, side by side.

FINN's area is dominated by activation thresholds (2^A - 1 per channel), so small boards need W8A4-style
mixes; this measures what each costs in validation top-1. Every mix is quantized from the same float
checkpoint by :func:`vidconv_edge.quant.pipeline.quantize` (calibration, optional QAT) into its own folder
``out_dir/<tag>/`` (``W8A8``, ``W8A4``, ``W8A8-W8A4`` = early W8A8 / later W8A4), whose ``quantized.pt``
goes on to export or build-fpga. The table is written to ``out_dir/mixes.json``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from vidconv_edge.errors import UserError
from vidconv_edge.io import atomic_path
from vidconv_edge.quant.bits import QuantBits, parse_mix

DEFAULT_MIXES = ("W8A8", "W8A4", "W4A4", "W8A8-W8A4")
MIXES_FILE = "mixes.json"


def compare_mixes(
    checkpoint: str | os.PathLike,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    mixes: list[str | QuantBits] = DEFAULT_MIXES,
    progress: bool = True,
    **options,
) -> dict:
    """Quantize ``checkpoint`` at each mix and measure val top-1; ``options`` go to ``quantize`` (epochs,
    calib_batches, batch_size, bias_correction, lr, seed, distill, freeze_bn, val). Returns {float_top1, val_videos, rows}."""
    from vidconv_edge.quant.pipeline import quantize

    bits = [m if isinstance(m, QuantBits) else parse_mix(m) for m in mixes]
    if not bits:
        raise UserError("no bit-width mixes given")
    tags = [b.tag() for b in bits]
    if len(set(tags)) != len(tags):
        raise UserError(f"bit-width mixes repeat: {', '.join(tags)}")
    out = Path(out_dir)
    rows, float_top1, val_videos = [], None, None
    for b in bits:
        t0 = time.perf_counter()
        s = quantize(checkpoint, data_dir, out / b.tag(), bits=b, progress=progress, float_top1=float_top1, **options)
        float_top1, val_videos = s["float_top1"], s["val_videos"]
        rows.append(
            {
                "mix": b.tag(),
                "label": b.label(),
                "early": {"weight": b.early.weight, "act": b.early.act},
                "later": {"weight": b.later.weight, "act": b.later.act},
                "ptq_top1": s["ptq_top1"],
                "qat_top1": s.get("qat_top1"),
                "top1": s["quant_top1"],
                "final": s["final"],
                "drop": s["top1_drop"],
                "checkpoint": s["files"]["quantized"],
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    result = {
        "checkpoint": str(checkpoint),
        "data": str(data_dir),
        "float_top1": float_top1,
        "val_videos": val_videos,
        "epochs": options.get("epochs", 0),
        "rows": rows,
    }
    with atomic_path(out / MIXES_FILE) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    return result


def print_mixes(result: dict, out_dir: str | os.PathLike) -> None:
    from rich.console import Console
    from rich.table import Table

    from vidconv_edge.tables import print_table

    qat = any(r["qat_top1"] is not None for r in result["rows"])
    table = Table(title=f"val top-1 per bit-width mix ({result['val_videos']} videos)")
    for col in ("mix", "early", "later", "calibrated", *(["QAT"] if qat else []), "vs float", "time"):
        table.add_column(col, justify="left" if col == "mix" else "right", no_wrap=True)
    table.add_row("float", "", "", f"{100 * result['float_top1']:.2f}%", *([""] if qat else []), "", "")
    for r in result["rows"]:
        e, l = r["early"], r["later"]
        cells = [r["mix"], f"W{e['weight']}A{e['act']}", f"W{l['weight']}A{l['act']}", f"{100 * r['ptq_top1']:.2f}%"]
        if qat:
            cells.append(f"{100 * r['qat_top1']:.2f}%" if r["qat_top1"] is not None else "-")
        cells += [f"{100 * (r['top1'] - result['float_top1']):+.2f}", f"{r['seconds']:.0f}s"]
        table.add_row(*cells)
    console = Console()
    print_table(table, console)
    console.print(f"checkpoints: {Path(out_dir) / 'MIX' / 'quantized.pt'}; table: {Path(out_dir) / MIXES_FILE}")
