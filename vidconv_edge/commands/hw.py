"""`vidconv-edge boards` and `vidconv-edge build-fpga`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("boards", help="list the FPGA boards build-fpga targets")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_boards)

    p = sub.add_parser(
        "build-fpga", help="lower a quantized edge model (VidConv, SEVNet without SE) through FINN to a dataflow accelerator for a board"
    )
    p.add_argument(
        "source", nargs="?",
        help="quantized checkpoint; a float one, quantized at the board's precision (--data, --qat-epochs); or an "
        "early/later-net QONNX file; default: the bundled float vic_edge, quantized at the board's precision",
    )  # fmt: skip
    p.add_argument("--board", default="pynq-z2", help="target board (see `vidconv-edge boards`; default pynq-z2)")
    p.add_argument("--out", required=True, help="build folder (report.json, per-part FINN outputs)")
    p.add_argument("--target-fps", type=_target_fps, default=30.0,
                   help="folding target, frames (collages; SEVNet: clips) per second (default 30); 'max': the highest "
                   "rate whose design still fits the board (a search of builds to the estimates, recorded in the report)")  # fmt: skip
    p.add_argument("--clock-ns", type=float, help="clock period in ns (default: the board's)")
    p.add_argument("--part", choices=("early", "later", "both", "both-separate", "clip"), default="both",
                   help="which part(s) to build: both = one design with both pipelines (one bitfile), "
                   "both-separate = two accelerators (two bitfiles, for comparison); a SEVNet builds as one "
                   "accelerator per clip (clip, also what both means for it)")  # fmt: skip
    p.add_argument("--until", help="stop after this step (e.g. generate_estimate_reports); default: as far as the tools allow")
    p.add_argument("--verify-samples", type=int, default=2,
                   help="video frames (early) / collages (later) / clips (SEVNet) verified")  # fmt: skip
    p.add_argument(
        "--no-strict-verify", dest="strict_verify", action="store_false",
        help="on a verification mismatch, report verified: false and go on (default: stop the build)",
    )  # fmt: skip
    p.add_argument("--video", help="video whose frames verify the HW graph (default: the bundled sample)")
    p.add_argument(
        "--data", help="dataset folder to quantize a float checkpoint on (calibration + val top-1); default: a "
        "synthetic set of the checkpoint's classes written to OUT/data",
    )  # fmt: skip
    p.add_argument("--test", metavar="DIR",
                   help="held-out test set (a folder with test.txt, or a list file) never used for calibration or "
                   "selection: the quantized model's top-1 on it with n and a 95%% interval")  # fmt: skip
    p.add_argument("--qat-epochs", type=int, default=0, help="QAT epochs after the calibration (default 0: PTQ only)")
    p.add_argument("--precision", help="quantize a float model at this precision, e.g. W8A8 (default: the board's)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of tables")
    p.add_argument("--quiet", action="store_true", help="no progress lines (the steps as they run)")
    p.set_defaults(handler=_build)


def _boards(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    from vidconv_edge.hw.boards import list_boards
    from vidconv_edge.tables import print_table

    boards = list_boards()
    if args.json:
        print(json.dumps({b.name: b.to_dict() for b in boards}, indent=2))
        return 0
    table = Table(title="build-fpga boards")
    for col in ("board", "part", "clock ns", "LUT", "FF", "BRAM18", "URAM", "DSP", "shell", "precision"):
        table.add_column(col, justify="right" if col in ("clock ns", "LUT", "FF", "BRAM18", "URAM", "DSP") else "left")
    for b in boards:
        table.add_row(b.name, b.part, f"{b.clock_ns:g}", f"{b.lut:,}", f"{b.ff:,}", str(b.bram_18k), str(b.uram),
                      f"{b.dsp:,}", b.shell_flow, b.precision)  # fmt: skip
    console = Console()
    print_table(table, console)
    for b in boards:
        console.print(f"  {b.name}: {b.note}")
    return 0


def _build(args: argparse.Namespace) -> int:
    import json

    from rich.markup import escape

    from vidconv_edge.hw.boards import get_board
    from vidconv_edge.hw.flow import build_fpga, resolve_until
    from vidconv_edge.hw.report import print_report, print_search
    from vidconv_edge.tables import TableConsole

    get_board(args.board)  # bad input fails before FINN is imported
    resolve_until(args.until)
    if args.precision:
        from vidconv_edge.quant.bits import make_bits, parse_part

        w, a = parse_part(args.precision)
        make_bits(w, act_bits=a)
    console = TableConsole(stderr=args.json)
    options = dict(
        clock_ns=args.clock_ns, part=args.part, until=args.until, verify_samples=args.verify_samples, video=args.video,
        strict_verify=args.strict_verify, data=args.data, qat_epochs=args.qat_epochs, precision=args.precision,
        test=args.test,
    )  # fmt: skip
    log = lambda msg: None if args.quiet else console.print(f"[dim]{escape(msg)}[/dim]")  # noqa: E731
    if args.target_fps == "max":
        from vidconv_edge.hw.search import build_fpga_max_fps

        report = build_fpga_max_fps(args.source, args.board, args.out, log=log, **options)
    else:
        report = build_fpga(args.source, args.board, args.out, target_fps=args.target_fps, log=log, **options)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report, console)
        if "fps_search" in report:
            print_search(report["fps_search"], console)
        console.print(f"report: {args.out}/report.json")
        deploy = report.get("deploy") or {}
        if deploy.get("written"):
            missing = ", ".join(m["file"] for m in deploy["missing"]) or "none"
            console.print(f"deploy bundle: {deploy['path']} (missing: {missing})")
    return 0


def _target_fps(text: str) -> float | str:
    """``--target-fps``: a positive number or ``max``."""
    if text.strip().lower() == "max":
        return "max"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of frames per second or 'max', got '{text}'") from None
