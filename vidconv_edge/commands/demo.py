"""`vidconv-edge demo`: the whole path on the bundled default model and sample video."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole path (model, export, quantize, fpga, stream) on the bundled default")
    p.add_argument("--out", default="vidconv-edge-demo", help="output folder (default ./vidconv-edge-demo)")
    p.add_argument("--source", help="video to stream (default: the bundled sample video)")
    p.add_argument("--checkpoint", help="float checkpoint (default: the bundled vic_edge)")
    p.add_argument("--steps", help="comma-separated subset of: model,export,quantize,fpga,stream")
    p.add_argument("--board", default="pynq-z2")
    p.add_argument("--quick", action="store_true", help="smaller variant (tests): fewer clips, early-net FPGA build")
    p.add_argument("--quiet", action="store_true", help="no progress bars / progress lines (the steps' results still print)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object (the steps' output goes to stderr)")
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console

    from vidconv_edge.demo import DemoConfig, parse_steps, run_demo

    cfg = DemoConfig(
        out=Path(args.out),
        source=Path(args.source) if args.source else None,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        steps=parse_steps(args.steps),
        board=args.board,
        quick=args.quick,
        progress=not args.quiet,
    )
    summary = run_demo(cfg, Console(stderr=args.json))
    if args.json:
        print(json.dumps(summary, default=str))
    return 0
