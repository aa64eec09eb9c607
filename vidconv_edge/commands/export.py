"""`vidconv-edge export`: a model or checkpoint to a plain-2D ONNX, QONNX (FINN) or QDQ (ORT int8) file."""

from __future__ import annotations

import argparse

from vidconv_edge.commands.models import add_model_overrides, model_overrides

TARGETS = ("onnx", "qonnx", "qdq")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model to ONNX / QONNX / QDQ (plain 2D ops, static shapes)")
    p.add_argument("source", nargs="?", help="checkpoint file or model name (default: the bundled vic_edge)")
    p.add_argument(
        "--target", choices=TARGETS, default="onnx",
        help="onnx: float; qonnx: quantized checkpoint for FINN; qdq: int8 for ONNX Runtime "
        "(a quantized checkpoint, or a float one with --calib-data)",
    )  # fmt: skip
    p.add_argument("-o", "--output", required=True, help="output .onnx file")
    p.add_argument(
        "--part", choices=("full", "early", "later", "fpga"), default="full",
        help="full clip, VidConv's per-frame early-net or collage later-net, or (qonnx) a quantized SEVNet's "
        "FPGA form: the clip stacked in one tensor, what build-fpga lowers",
    )  # fmt: skip
    p.add_argument("--calib-data", help="qdq from a float model: dataset folder for ORT static calibration")
    p.add_argument("--calib-clips", type=int, default=8, help="clips used for calibration (default 8)")
    add_model_overrides(p)
    p.set_defaults(handler=_export)


def load_export_source(args: argparse.Namespace):
    """(model, class names, origin): quantized checkpoints for qonnx/qdq, float ones for onnx."""
    from vidconv_edge.checkpoint import load_checkpoint
    from vidconv_edge.errors import UserError
    from vidconv_edge.models.loading import load_model

    overrides = model_overrides(args)
    if args.target == "onnx":
        return load_model(args.source, **overrides)
    from vidconv_edge.quant.model import is_quant_checkpoint, quant_model_from_checkpoint

    if args.source is None:
        raise UserError(f"--target {args.target} needs a checkpoint: a quantized one from `vidconv-edge quantize`")
    ckpt = load_checkpoint(args.source)
    if is_quant_checkpoint(ckpt):
        if overrides:
            raise UserError("model options cannot change a quantized checkpoint")
        model, ckpt = quant_model_from_checkpoint(ckpt)
        return model, list(ckpt["class_names"]), f"quantized checkpoint {args.source}"
    if args.target == "qonnx":
        quant_model_from_checkpoint(ckpt)  # raises the float-vs-quantized message
    if not args.calib_data:
        raise UserError("--target qdq from a float checkpoint needs --calib-data DIR for ORT calibration")
    return load_model(args.source, **overrides)


def source_recipe(source: str | None) -> dict | None:
    """The training recipe stored in the exported checkpoint (None for a model name or a checkpoint without one)."""
    from pathlib import Path

    from vidconv_edge.assets import DEFAULT_CHECKPOINT
    from vidconv_edge.checkpoint import load_checkpoint

    path = Path(source) if source is not None else DEFAULT_CHECKPOINT
    return load_checkpoint(path).get("recipe") if path.is_file() else None


def _export(args: argparse.Namespace) -> int:
    from rich.console import Console

    from vidconv_edge.export.onnx import export_onnx

    if args.part == "fpga" and args.target != "qonnx":
        from vidconv_edge.errors import UserError

        raise UserError("--part fpga is the FINN form of a quantized SEVNet: use it with --target qonnx")
    model, class_names, origin = load_export_source(args)
    recipe = source_recipe(args.source)
    if args.target == "onnx":
        summary = export_onnx(model, args.output, part=args.part, class_names=class_names, recipe=recipe)
    elif args.target == "qonnx":
        from vidconv_edge.export.qonnx import export_qonnx

        summary = export_qonnx(model, args.output, part=args.part, class_names=class_names, recipe=recipe)
    else:
        from vidconv_edge.export.calibration import calibration_inputs
        from vidconv_edge.export.qdq import export_qdq
        from vidconv_edge.quant.model import is_quant_model

        calib = None
        if not is_quant_model(model):
            calib = calibration_inputs(model, args.calib_data, args.part, args.calib_clips)
        summary = export_qdq(model, args.output, part=args.part, calib=calib, class_names=class_names, recipe=recipe)
    console = Console()
    console.print(f"exported {model.name} ({origin}), {args.target} part '{summary.part}' -> {summary.path}")
    console.print(f"  inputs {summary.inputs}  outputs {summary.outputs}")
    console.print(f"  {summary.params:,} params, {summary.file_bytes / 1e6:.2f} MB, plain 2D: yes")
    ops = ", ".join(f"{op} {n}" for op, n in summary.op_counts.items())
    console.print(f"  ops: {ops}")
    return 0
