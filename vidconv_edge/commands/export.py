"""`vidconv-edge export`: a model or checkpoint to a plain-2D ONNX file."""

from __future__ import annotations

import argparse

from vidconv_edge.commands.models import add_model_overrides, model_overrides

TARGETS = ("onnx",)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (plain 2D ops, static shapes)")
    p.add_argument("source", nargs="?", help="checkpoint file or model name (default: the bundled vic_edge)")
    p.add_argument("--target", choices=TARGETS, default="onnx")
    p.add_argument("-o", "--output", required=True, help="output .onnx file")
    p.add_argument("--part", choices=("full", "early", "later"), default="full")
    add_model_overrides(p)
    p.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from rich.console import Console

    from vidconv_edge.checkpoint import load_model
    from vidconv_edge.export.onnx import export_onnx

    model, class_names, origin = load_model(args.source, **model_overrides(args))
    summary = export_onnx(model, args.output, part=args.part, class_names=class_names)
    console = Console()
    console.print(f"exported {model.name} ({origin}), part '{summary.part}' -> {summary.path}")
    console.print(f"  inputs {summary.inputs}  outputs {summary.outputs}")
    console.print(f"  {summary.params:,} params, {summary.file_bytes / 1e6:.2f} MB, plain 2D: yes")
    ops = ", ".join(f"{op} {n}" for op, n in summary.op_counts.items())
    console.print(f"  ops: {ops}")
    return 0
