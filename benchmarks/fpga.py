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

``--families``: both bundled families side by side, each board at its own default precision (one table):
held-out top-1 (``synth --task camera-motion --heldout`` clips, normal frame order, Wilson 95% interval) of the
float model, of the quantized one (Brevitas) and of the verified HW graph (FINN python execution), measured once
per model and precision; per board: outputs per second (vic_edge: one label per new frame, from the frame ring;
sevnet_edge: one label per clip pass), latency per output (last frame in -> label out from FINN's cycle estimates:
vic_edge one early-net frame + one later-net collage, sevnet_edge one pass of the whole clip, sent once its last
frame is in) and LUT / BRAM18 / DSP. ``--quantized MODEL:PRECISION=PATH`` builds a given quantized checkpoint (e.g.
a QAT one) instead of what the build makes of the bundled float model: its bundled QAT form at that precision
(``vidconv_edge/assets/<model>_w8a4.pt``), else the build's own PTQ.

    python benchmarks/fpga.py --families [--boards pynq-z2 pynq-z1 ultra96-v2 kv260 zcu104]
                              [--quantized sevnet_edge:W8A4=q.pt ...] [--test-per-class 60] [--work runs/fpga] [--json]
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


def family_accuracy(model_name: str, float_ckpt: Path, quantized: Path, build: Path, test: Path) -> dict:
    """Held-out top-1 (normal order) of the float model, the quantized one and the build's HW graph."""
    from vidconv_edge.train.metrics import wilson_interval

    from vidconv_edge.apps.artifacts import HwGraphModel
    from vidconv_edge.apps.default_model import frame_order_results
    from vidconv_edge.checkpoint import load_checkpoint
    from vidconv_edge.models.loading import model_from_checkpoint
    from vidconv_edge.quant.model import quant_model_from_checkpoint

    recipe = load_checkpoint(float_ckpt)["recipe"]
    qmodel, qckpt = quant_model_from_checkpoint(quantized)
    hw = HwGraphModel(build)
    models = {"quantized": (qmodel, {**qckpt, "recipe": recipe}), "hw_graph": (hw, {**hw.meta, "recipe": recipe})}
    if float_ckpt not in _FLOAT:
        models["float"] = model_from_checkpoint(float_ckpt)
    out = {}
    for kind, (model, ckpt) in models.items():
        r = frame_order_results(model, ckpt, test, test / "test.txt", 0, ("normal",))["normal"]
        out[kind] = {"top1": r["top1"], "clips": r["num_samples"], "interval": wilson_interval(round(r["top1"] * r["num_samples"]), r["num_samples"])}
    out["float"] = _FLOAT.setdefault(float_ckpt, out.get("float"))
    return out


_FLOAT: dict[Path, dict] = {}  # float top-1 per checkpoint (the same for every precision)


def output_latencies_ms(build: Path, clock_ns: float) -> list[float]:
    """Per graph output of the built design: FINN's pessimistic latency (sum of the layers' cycle estimates along
    the longest path from an input, no overlap), as ``dataflow_performance`` computes it for the whole graph."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    path = next(p for d in ("merged", "clip", "early") for p in (build / d / "intermediate_models").glob(
        "*_step_generate_estimate_reports.onnx"))  # fmt: skip
    model = ModelWrapper(str(path))
    done: dict[str, int] = {}
    for node in model.graph.node:  # topologically sorted
        preds = model.find_direct_predecessors(node) or []
        cycles = int(getCustomOp(node).get_nodeattr("cycles_estimate") or 0)
        done[node.output[0]] = cycles + max((done[p.output[0]] for p in preds), default=0)
        for extra in node.output[1:]:
            done[extra] = done[node.output[0]]
    return [done[o.name] * clock_ns / 1e6 for o in model.graph.output]


def built_or_kept(source: Path, board: str, precision: str, target_fps: float, out: Path) -> tuple[dict, Path, float]:
    """``build_fpga`` into ``out``, or the build already there if it was made from the same request (the source
    file's sha256 and that of its bundled quantized form, board, precision, target fps; ``request.json``): an
    interrupted ``--families`` run goes on."""
    from vidconv_edge.assets import bundled_quantized
    from vidconv_edge.hw.flow import build_fpga
    from vidconv_edge.stream.backends.onnx_cache import content_key

    form = bundled_quantized(source, precision)  # what the build takes for a bundled float model
    request = {"source": content_key(source), "bundled_form": form and content_key(form), "board": board,
               "precision": precision, "target_fps": target_fps}  # fmt: skip
    kept = out / "request.json"
    if kept.is_file() and json.loads(kept.read_text()) == request and (out / "report.json").is_file():
        report = json.loads((out / "report.json").read_text())
        return report, out, report.get("flow_seconds", 0.0)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        r = build_fpga(source, board, out, target_fps=target_fps, strict_verify=False, precision=precision,
                       log=lambda _m: None)  # fmt: skip
    _write_json(kept, request)
    return r, out, time.perf_counter() - t0


def kept_accuracy(build: Path, test: Path, measure) -> dict:
    """``measure()``, kept in ``build/heldout_accuracy.json`` for this build request and held-out set."""
    kept = build / "heldout_accuracy.json"
    key = {"request": json.loads((build / "request.json").read_text()),
           "heldout": json.loads((test / "synth.json").read_text())}  # fmt: skip
    if kept.is_file() and json.loads(kept.read_text())["key"] == key:
        return json.loads(kept.read_text())["accuracy"]
    accuracy = measure()
    _write_json(kept, {"key": key, "accuracy": accuracy})
    return accuracy


def _write_json(path: Path, data) -> None:
    """``data`` to ``path`` through a temporary file: an interrupted run never leaves half a record to reuse."""
    from vidconv_edge.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data))


def run_families(args) -> list[dict]:
    """One row per (model, board): the board's default precision, shared accuracy per (model, precision)."""
    from accuracy import held_out_set

    from vidconv_edge.assets import ASSETS, bundled_quantized
    from vidconv_edge.hw.boards import get_board
    from vidconv_edge.quant.pipeline import FINAL

    work = Path(args.work)
    test = held_out_set(work, args.test_per_class)
    given = dict(q.split("=", 1) for q in args.quantized)
    rows, accuracy = [], {}
    for model_name in args.models:
        float_ckpt = ASSETS / f"{model_name}.pt"
        built: dict[tuple, tuple[dict, Path, float]] = {}  # boards with the same part, clock and precision
        for board in args.boards:
            spec = get_board(board)
            precision = spec.precision
            source = Path(given.get(f"{model_name}:{precision}", float_ckpt))
            same = (spec.part, spec.clock_ns, precision)
            if same not in built:
                built[same] = built_or_kept(source, board, precision, args.target_fps, work / f"{model_name}_{board}")
            r, out, build_s = built[same]
            key = (model_name, precision)
            if key not in accuracy:
                quantized = source if source != float_ckpt else (bundled_quantized(source, precision)
                                                                 or out / "quant" / FINAL)  # fmt: skip
                accuracy[key] = kept_accuracy(out, test, lambda: family_accuracy(model_name, float_ckpt, quantized,
                                                                                  out, test))  # fmt: skip
            rows.append({
                "model": model_name, "board": board, "precision": precision, "quantized": str(source),
                "accuracy": accuracy[key], "outputs_per_s": r["estimated_fps"],
                "latency_ms": sum(output_latencies_ms(out, r["clock_ns"])),  # vic_edge: early frame + later collage
                "LUT": r["total"]["LUT"], "BRAM_18K": r["total"]["BRAM_18K"], "DSP": r["total"]["DSP"],
                "use": r["utilization"], "fits": r["fits"], "verified": r["verified"], "build_s": round(build_s, 1),
            })  # fmt: skip
            (work / "families.json").write_text(json.dumps(rows, indent=1))  # each row as soon as it is measured
    return rows


def print_families(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="vic_edge and sevnet_edge on the boards (held-out top-1; FINN estimates + stated margin)")
    cols = ("model", "board", "precision", "float top-1", "quant top-1", "HW graph top-1", "outputs/s",
            "latency ms", "LUT (use)", "BRAM18 (use)", "DSP (use)", "fits", "verified")  # fmt: skip
    for c in cols:
        t.add_column(c, justify="left" if c in ("model", "board", "precision") else "right")
    pct = lambda a: f"{100 * a['top1']:.1f}% ({100 * a['interval'][0]:.1f}-{100 * a['interval'][1]:.1f})"  # noqa: E731
    for r in rows:
        a, u = r["accuracy"], r["use"]
        t.add_row(r["model"], r["board"], r["precision"], pct(a["float"]), pct(a["quantized"]), pct(a["hw_graph"]),
                  f"{r['outputs_per_s']:.1f}", f"{r['latency_ms']:.1f}", f"{r['LUT']:,.0f} ({u['LUT']:.0%})",
                  f"{r['BRAM_18K']:.0f} ({u['BRAM_18K']:.0%})", f"{r['DSP']:.0f} ({u['DSP']:.0%})", str(r["fits"]),
                  "yes" if r["verified"] else "no")  # fmt: skip
    Console(width=220).print(t)
    if rows:
        print(f"top-1 on {rows[0]['accuracy']['float']['clips']} held-out clips (normal order, 95% Wilson interval)")


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
    p.add_argument("--families", action="store_true",
                   help="both bundled families side by side, each board at its default precision, held-out top-1")
    p.add_argument("--quantized", nargs="+", default=[], metavar="MODEL:PRECISION=PATH",
                   help="--families: a quantized checkpoint to build for that model and precision")
    p.add_argument("--test-per-class", type=int, default=60, help="--families: held-out clips per class")
    p.add_argument("--models", nargs="+", choices=("vic_edge", "sevnet_edge"), default=["vic_edge", "sevnet_edge"],
                   help="--families: which families")
    p.add_argument("--work", default="runs/fpga", help="--families: builds and the held-out set (kept)")
    args = p.parse_args(argv)
    if args.families and "--boards" not in (argv if argv is not None else sys.argv[1:]):
        args.boards = ["pynq-z2", "pynq-z1", "ultra96-v2", "kv260", "zcu104"]
    torch.set_num_threads(1)
    rows = run_families(args) if args.families else run(args)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        (print_families if args.families else print_rows)(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
