"""The build report: FINN's estimates per layer and per part, the fit check with a stated margin,
the streaming fps, the verification result; ``report.json`` and a rich table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vidconv_edge.hw.boards import BOARDS, Board
from vidconv_edge.io import atomic_path

FIT_RESOURCES = ("LUT", "BRAM_18K", "DSP")
ESTIMATED = ("LUT", "BRAM_18K", "URAM", "DSP")
CAMERA_FPS = 30  # cameras_at_30fps: streams at stride 1 (each frame: one early pass and one later pass, or one clip)
UTILISATION_LIMIT = 0.80  # placement/routing headroom: a design above 80% of a resource rarely closes timing
# margin = fraction of the estimate + a fixed amount for the shell (PS/DMA, AXI interconnect)
MARGIN_FRACTION = {"LUT": 0.10, "BRAM_18K": 0.20, "DSP": 0.0}
MARGIN_FIXED = {"LUT": 3000, "BRAM_18K": 4, "DSP": 0}
MARGIN_NOTE = (
    "FINN's estimator leaves out FIFOs (sizing needs simulation), data-width converters, FFs and the PS/DMA shell, "
    "and counts MVAU_rtl, element-wise adds, duplicators, padding and pooling as 0 LUT. The fit check adds "
    "10% of the estimated LUTs + 3000 LUT (shell, DMA), 20% of the estimated BRAM18 + 4 (FIFOs: full buffering of "
    "vic_edge's residual forks measured ~29 BRAM18, ~20% of its estimate; DMA buffers), no DSP, and requires "
    "estimate + margin <= 80% of LUT, BRAM18 and DSP, estimate <= 80% of URAM. FF is not estimated by FINN."
)


def margin_for(total: dict) -> dict:
    return {k: round(MARGIN_FRACTION[k] * total.get(k, 0) + MARGIN_FIXED[k], 1) for k in FIT_RESOURCES}


def read_part_reports(report_dir: str | os.PathLike) -> dict:
    """Per-layer resources and cycles, totals and fps from FINN's ``report/estimate_*.json`` of one part."""
    d = Path(report_dir)
    res = json.loads((d / "estimate_layer_resources.json").read_text())
    cycles = json.loads((d / "estimate_layer_cycles.json").read_text())
    perf = json.loads((d / "estimate_network_performance.json").read_text())
    layers = [
        {"layer": name, **{k: _num(r.get(k, 0)) for k in ESTIMATED}, "cycles": int(cycles.get(name, 0))}
        for name, r in res.items()
        if name != "total"
    ]
    total = {k: sum(layer[k] for layer in layers) for k in ESTIMATED}
    return {
        "layers": layers,
        "total": total,
        "max_cycles": int(perf["max_cycles"]),
        "bottleneck": perf.get("max_cycles_node_name"),
        "estimated_fps": float(perf["estimated_throughput_fps"]),
        "latency_ms": float(perf["estimated_latency_ns"]) / 1e6,
    }


def split_by_pipeline(whole: dict, pipelines: dict, clock_ns: float) -> dict:
    """Per-part layers, totals, cycles and rate of a merged design's estimates (``read_part_reports`` of it),
    each part owning the layers of its pipeline (``pipelines``: part -> {"layers": [...]})."""
    out = {}
    for part, p in pipelines.items():
        names = set(p["layers"])
        layers = [layer for layer in whole["layers"] if layer["layer"] in names]
        slowest = max(layers, key=lambda layer: layer["cycles"])
        out[part] = {
            "layers": layers, "total": {k: sum(layer[k] for layer in layers) for k in ESTIMATED},
            "max_cycles": slowest["cycles"], "bottleneck": slowest["layer"],
            "estimated_fps": 1e9 / (clock_ns * slowest["cycles"]),
        }  # fmt: skip
    return out


def _num(v) -> float:
    return round(float(v), 2)


def fit_check(total: dict, board: Board) -> dict:
    """Margin, totals with margin, utilisation, ``fits`` and the overflowing resources of ``total`` on ``board``."""
    cap = board.capacity
    margin = margin_for(total)
    with_margin = {k: round(total.get(k, 0) + margin[k], 1) for k in FIT_RESOURCES}
    util = {k: round(with_margin[k] / cap[k], 4) if cap[k] else None for k in FIT_RESOURCES}
    if cap["URAM"]:  # parts with URAM: step_memory_styles may put threshold memories there
        util["URAM"] = round(total.get("URAM", 0) / cap["URAM"], 4)
    checked = {**with_margin, "URAM": total.get("URAM", 0)}  # URAM only when FINN assigns any
    overflow = [
        {"resource": k, "needed": checked[k], "allowed": round(UTILISATION_LIMIT * cap[k], 1), "capacity": cap[k]}
        for k in (*FIT_RESOURCES, "URAM")
        if checked[k] > UTILISATION_LIMIT * cap[k]
    ]
    return {
        "margin": {**margin, "note": MARGIN_NOTE},
        "total_with_margin": with_margin,
        "utilization": util,
        "limit": UTILISATION_LIMIT,
        "fits": not overflow,
        "overflow": overflow,
    }


def suggestions(total: dict, board: Board, bits: str, early_fits_alone: bool, overflow: list[str] = ()) -> list[str]:
    """What to try when the model does not fit (``overflow``: the resources over the limit)."""
    tips = ["lower --target-fps: less folding parallelism, fewer LUTs per layer"]
    if not bits.endswith("A4") and not bits.endswith("A2"):
        tips.append("4-bit activations (W8A4): thresholds cost ~2^A per channel, A8 -> A4 saves ~16x on them")
    w = int(bits[1 : bits.index("A")]) if bits.startswith("W") and "A" in bits else 0
    if "BRAM_18K" in overflow and w > 4:
        tips.append(f"4-bit weights: quantize the float checkpoint with --precision W4{bits[bits.index('A'):]} (the "
                    f"weights fill the BRAM: W{w} -> W4 stores {w // 4}x fewer bits)")  # fmt: skip
    bigger = [b.name for b in BOARDS.values() if b.lut > board.lut and fit_check(total, b)["fits"]]
    if bigger:
        tips.append(f"a larger board: {bigger[0]}")
    if early_fits_alone:
        tips.append("only the early-net on the fabric and the later-net on the ARM cores (--part early)")
    return tips


def combine(parts: dict[str, dict], board: Board, bits: str, merged: bool = False) -> dict:
    """The whole-build figures from the per-part reports (parts that reached the estimates); ``merged``: the
    parts are the two pipelines of one design (one bitstream) rather than two separate builds."""
    estimated = {p: r for p, r in parts.items() if "total" in r}
    total = {k: round(sum(r["total"][k] for r in estimated.values()), 1) for k in ESTIMATED}
    out = {"total": total, "capacity": board.capacity, **fit_check(total, board)}
    if not estimated:
        note = "no estimates: the build stopped before step_generate_estimate_reports"
        out.update(fits=False, estimated_fps=None, fit_note=note)
        return out
    early_alone = "early" in estimated and fit_check(estimated["early"]["total"], board)["fits"]
    if not out["fits"]:
        over = [o["resource"] for o in out["overflow"]]
        out["suggestions"] = suggestions(total, board, bits, early_alone and len(estimated) > 1, over)
    fps = [r["estimated_fps"] for r in estimated.values()]
    out["estimated_fps"] = round(min(fps), 2) if fps else None
    out["cameras_at_30fps"] = int(out["estimated_fps"] // CAMERA_FPS) if out["estimated_fps"] else 0
    if set(estimated) == {"early", "later"}:
        e, l = estimated["early"]["estimated_fps"], estimated["later"]["estimated_fps"]
        placement = "fabric" if out["fits"] else ("arm" if early_alone else "none")
        why = (
            f"streaming runs the early-net once per frame ({e:.1f} frames/s) and the later-net once per collage "
            f"({l:.1f} collages/s): pipeline {min(e, l):.1f} fps. "
        )
        if placement == "fabric" and merged:
            why += (
                "Both fit on the fabric together, so both run there (the ARM cores only decode and lay out the "
                "collage), as one design: two independent dataflow pipelines in one FINN build, one bitstream, "
                "one driver with two input and two output DMAs."
            )
        elif placement == "fabric":
            why += (
                "Both fit on the fabric together, but these are two separate FINN builds (--part both-separate): "
                "an FPGA holds one bitstream at a time, so build with --part both for one design holding both."
            )
        elif placement == "arm":
            out["estimated_fps"] = round(e, 2)
            why += (
                "Both together do not fit, the early-net alone does: the later-net runs on the ARM cores; "
                "estimated_fps is the early-net's, the ARM later-net rate is not estimated here."
            )
            if merged:
                why += " Rebuild with --part early for the early-net's own bitfile."
            out["cameras_at_30fps"] = int(e // CAMERA_FPS)
        else:
            why += "Not even the early-net fits alone on this board."
        out["placement"] = {"early_net": "fabric" if early_alone or out["fits"] else "none", "later_net": placement,
                            "why": why}  # fmt: skip
    return out


def write_report(report: dict, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    return Path(path)


def print_report(report: dict, console=None) -> None:
    """Per-layer resources and cycles, totals, capacity, margin, fit and fps as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    for part, r in report["parts"].items():
        if "layers" not in r:
            continue
        t = Table(title=f"{report['model']} {part}-net ({report['bits']}) on {report['board']}: FINN estimates")
        for col in ("layer", "LUT", "BRAM_18K", "URAM", "DSP", "cycles"):
            t.add_column(col, justify="left" if col == "layer" else "right")
        for layer in r["layers"]:
            t.add_row(layer["layer"], *(f"{layer[k]:g}" for k in ESTIMATED), str(layer["cycles"]))
        t.add_row("[b]total[/b]", *(f"[b]{r['total'][k]:g}[/b]" for k in ESTIMATED),
                  f"[b]{r['max_cycles']}[/b] (max)", end_section=True)  # fmt: skip
        console.print(t)
        console.print(f"  {part}-net: {r['estimated_fps']:.1f} /s at {report['clock_ns']} ns, "
                      f"bottleneck {r['bottleneck']}, verified: {r.get('verified')}")  # fmt: skip
    if "total" in report:
        t = Table(title=f"{report['board']} fit check (limit {report['limit']:.0%} with margin)")
        for col in ("resource", "estimate", "margin", "with margin", "capacity", "use"):
            t.add_column(col, justify="left" if col == "resource" else "right")
        for k in FIT_RESOURCES:
            use = report["utilization"][k]
            t.add_row(k, f"{report['total'][k]:g}", f"{report['margin'][k]:g}", f"{report['total_with_margin'][k]:g}",
                      str(report["capacity"][k]), f"{use:.0%}" if use is not None else "-")  # fmt: skip
        if "URAM" in report["utilization"]:
            t.add_row("URAM", f"{report['total']['URAM']:g}", "0", f"{report['total']['URAM']:g}",
                      str(report["capacity"]["URAM"]), f"{report['utilization']['URAM']:.0%}")  # fmt: skip
        console.print(t)
        verdict = "[green]fits[/green]" if report["fits"] else "[red]does not fit[/red]"
        console.print(f"{verdict}; estimated_fps {report['estimated_fps']} ({report.get('cameras_at_30fps', 0)} camera(s) at "
                      f"30 fps, stride 1); verified {report['verified']}")
        for tip in report.get("suggestions", []):
            console.print(f"  try: {tip}")
        if "placement" in report:
            console.print(f"  placement: {report['placement']['why']}")
        if report.get("design") == "merged":
            console.print("  design: both parts in one FINN build (two pipelines, one bitstream): build folder merged/")
    q = report.get("quantization")
    if q and "float_top1" in q:
        after = f"PTQ {q['ptq_top1']:.3f}" + (f", QAT {q['qat_top1']:.3f}" if "qat_top1" in q else "")
        console.print(f"val top-1 on {q['val_videos']} videos ({q['data']}): float {q['float_top1']:.3f}, "
                      f"{q['bits']} {after}; kept {q.get('final', 'calibrated')}: {0.0 - 100 * q['top1_drop']:+.1f} points")  # fmt: skip
    if q and q.get("heldout"):
        from vidconv_edge.train.metrics import format_accuracy

        console.print(f"held-out test top-1 ({q['heldout']['list']}: clips never used in training, selection or "
                      f"calibration): {report['bits']} {format_accuracy(q['heldout'])}")  # fmt: skip
    if report.get("stopped"):
        console.print(f"[yellow]{report['stopped']}[/yellow]")


def print_search(search: dict, console=None) -> None:
    """The ``--target-fps max`` search: each target tried, its rate, use of the board and fit; what stopped it."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"fps search: best target {search['best_target_fps']}")
    for col in ("target fps", "estimated fps", "LUT", "BRAM18", "DSP", "fits"):
        table.add_column(col, justify="right")
    for t in search["trials"]:
        use = t["utilization"]
        cell = lambda k: "-" if use.get(k) is None else f"{100 * use[k]:.0f}%"  # noqa: E731
        table.add_row(f"{t['target_fps']:g}", "-" if t["estimated_fps"] is None else f"{t['estimated_fps']:.1f}",
                      cell("LUT"), cell("BRAM_18K"), cell("DSP"), "yes" if t["fits"] else f"no ({', '.join(t['overflow'])})")  # fmt: skip
    console.print(table)
    console.print(f"  stopped by: {search['stopped_by'].get('note', search['stopped_by'].get('reason'))}")
