"""`vidconv-edge models` and `vidconv-edge info`."""

from __future__ import annotations

import argparse
import json

import yaml


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered models")
    p.add_argument("--json", action="store_true", help="print one JSON list")
    p.set_defaults(handler=_models)

    p = sub.add_parser("info", help="params and multiply-accumulates of a model, per stage")
    p.add_argument("model", help="registered model name or checkpoint path")
    add_model_overrides(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_info)


def add_model_overrides(p: argparse.ArgumentParser) -> None:
    """The options that reshape a model: classes, frames, input size, and any config key."""
    p.add_argument("--num-classes", type=int)
    p.add_argument("--frames", type=int, help="frames per clip (VidConv: h*w of the collage layout)")
    p.add_argument("--size", type=int, help="input height = width in pixels (a multiple of 32)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="any model config key, e.g. --set neck_dim=0 --set stack_stage=3 --set layout=[2,2]",
    )  # fmt: skip


def model_overrides(args: argparse.Namespace) -> dict:
    from vidconv_edge.errors import UserError

    out: dict = {}
    if args.num_classes is not None:
        out["num_classes"] = args.num_classes
    if args.frames is not None:
        out["frames"] = args.frames
    if args.size is not None:
        out["img_size"] = args.size
    for item in args.set:
        if "=" not in item:
            raise UserError(f"--set expects KEY=VALUE, got '{item}'")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def _models(args: argparse.Namespace) -> int:
    from rich.table import Table

    from vidconv_edge.models import list_models
    from vidconv_edge.tables import print_table

    if args.json:
        print(json.dumps([{"name": e.name, "family": e.family, "description": e.description} for e in list_models()]))
        return 0
    table = Table(title="vidconv-edge models")
    for col in ("name", "family", "description"):
        table.add_column(col)
    for entry in list_models():
        table.add_row(entry.name, entry.family, entry.description)
    print_table(table)
    return 0


def _info(args: argparse.Namespace) -> int:
    from rich.console import Console

    from vidconv_edge.models.analysis import profile_model, profile_table
    from vidconv_edge.models.loading import load_model
    from vidconv_edge.tables import print_table

    model, _, origin = load_model(args.model, **model_overrides(args))
    prof = profile_model(model)
    if args.json:
        print(json.dumps(prof.to_dict()))
        return 0
    console = Console()
    print_table(profile_table(prof, f"{model.name}: input {tuple(prof.input_shape)} ({origin})"), console)
    if prof.macs_per_streamed_frame is not None:
        console.print(f"streaming: {prof.macs_per_streamed_frame / 1e9:.3f} GMACs per new frame (early-net on one frame + later-net)")
    return 0
