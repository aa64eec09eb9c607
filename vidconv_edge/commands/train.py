"""``train``, ``eval`` and ``predict``: the command line over ``vidconv_edge.train``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

BACKENDS = ("torch", "onnxruntime", "finn-sim")  # as vidconv_edge.apps.artifacts.BACKENDS (kept light: no torch import)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on a video dataset (DDP under torchrun)",
        description="Train MODEL on the videos of DIR with a YAML recipe; writes last.pt, best.pt, "
        "metrics.jsonl, curves.png and recipe.yaml into RUN. Run under `torchrun --nproc_per_node N` for DDP.",
    )
    p.add_argument("--model", required=True, help="registered model name (vidconv-edge models)")
    p.add_argument("--data", required=True, metavar="DIR", help="data root: class folders and/or list files")
    p.add_argument("--train-list", metavar="F", help="training list (MMAction2 .txt, Kinetics .csv, SSv2 .json)")
    p.add_argument("--val-list", metavar="F", help="validation list (default: val.txt in DIR, else a stratified split)")
    p.add_argument("--config", metavar="YAML", help="recipe file or shipped recipe name (e.g. vic_tiny_k400, edge)")
    p.add_argument("--epochs", type=int, help="total epochs (default: the recipe's)")
    p.add_argument("--out", required=True, metavar="RUN", help="output folder of the run")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN from its last.pt")
    p.add_argument("--pretrained", metavar="FILE", help="initial weights: a vidconv-edge checkpoint or ImageNet ConvNeXt")
    p.add_argument("--batch-size", type=int, metavar="B", help="clips per process and step (the recipe's batch is reached by accumulation)")
    p.add_argument("--workers", type=int, metavar="N", help="data loading processes per training process")
    p.add_argument("--seed", type=int, metavar="S", help="random seed (default: the recipe's)")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop after N epochs of this run (the schedule still spans --epochs); continue with --resume")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress: no bars on a terminal, no line per epoch in a log")
    p.set_defaults(handler=_train)

    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint or ONNX file: top-1/top-5/mean class accuracy, confusion matrix",
        description="Evaluate CHECKPOINT (float or quantized; default: the bundled vic_edge model), an exported "
        "ONNX file (float or QDQ int8, run by ONNX Runtime) or a build-fpga folder (its HW-layer graphs executed "
        "by FINN in Python) on the validation videos of DIR (or those of --list, e.g. a held-out test.txt).",
    )
    p.add_argument("checkpoint", nargs="?",
                   help="checkpoint (.pt), ONNX file (.onnx) or build-fpga folder; default: the bundled vic_edge model")  # fmt: skip
    p.add_argument("--backend", choices=BACKENDS,
                   help="torch for checkpoints, onnxruntime for ONNX files, finn-sim for build-fpga folders "
                   "(FINN's python execution of the HW graph; default: by the file)")  # fmt: skip
    p.add_argument("--data", required=True, metavar="DIR", help="data root")
    p.add_argument("--list", metavar="F", help="list of the videos to evaluate (default: the validation split of DIR)")
    p.add_argument("--test", metavar="DIR",
                   help="also the held-out test set (a folder with test.txt, or a list file): its top-1 with n and a "
                   "95%% interval, reported apart from the validation figures")  # fmt: skip
    p.add_argument("--views", metavar="CxS", help="clips x crops per video, e.g. 4x1, 1x3, 10x3 (default: the recipe's)")
    p.add_argument("--order", choices=("normal", "reverse", "shuffle"), default="normal", help="frame order test (paper Table 10)")
    p.add_argument("--batch-size", type=int, default=8, metavar="B")
    p.add_argument("--workers", type=int, default=0, metavar="N")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--json", action="store_true", help="print one JSON object (top1, top5, mean_class_acc as fractions)")
    p.add_argument("--out", metavar="DIR", help="write metrics.json and confusion.png here")
    p.add_argument("--quiet", action="store_true", help="no progress bar / progress line")
    p.set_defaults(handler=_eval)

    p = sub.add_parser(
        "predict",
        help="top-k labels for one video file",
        description="Classify VIDEO with CHECKPOINT (default: the bundled vic_edge model).",
    )
    p.add_argument("checkpoint", nargs="?", help="checkpoint (.pt) or ONNX file (.onnx); default: the bundled vic_edge model")
    p.add_argument("video", help="video file or frame folder")
    p.add_argument("--topk", type=int, default=5, metavar="K")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_predict)


def _train(args: argparse.Namespace) -> int:
    from vidconv_edge.train import load_recipe, train
    from vidconv_edge.train.distributed import cleanup

    recipe = load_recipe(args.config)
    try:
        metrics = train(
            recipe,
            args.data,
            args.out,
            args.model,
            epochs=args.epochs,
            resume=args.resume,
            pretrained=args.pretrained,
            train_list=args.train_list,
            val_list=args.val_list,
            batch_size=args.batch_size,
            workers=args.workers,
            seed=args.seed,
            stop_after=args.stop_after,
            device=args.device,
            progress=not args.quiet,
        )
    finally:
        cleanup()
    if args.json and int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(metrics))
    return 0


def _checkpoint(path: str | None) -> Path:
    from vidconv_edge.assets import default_checkpoint

    return Path(path) if path else default_checkpoint()


def _eval(args: argparse.Namespace) -> int:
    from vidconv_edge.apps.artifacts import load_eval_model
    from vidconv_edge.io import atomic_path
    from vidconv_edge.train.eval_data import eval_dataset, parse_views
    from vidconv_edge.train.evaluate import evaluate
    from vidconv_edge.train.metrics import accuracy_entry, plot_confusion

    model, ckpt = load_eval_model(_checkpoint(args.checkpoint), args.backend)
    views = parse_views(args.views) if args.views else None
    dataset = eval_dataset(args.data, ckpt, args.list, views)
    multilabel = bool((ckpt.get("recipe") or {}).get("train", {}).get("multilabel", False))
    result = evaluate(
        model, dataset, views=dataset.views, order=args.order, batch_size=args.batch_size, multilabel=multilabel,
        workers=args.workers, device=args.device, progress=not args.quiet,
    )  # fmt: skip
    result = {"model": ckpt["model"], "checkpoint": str(_checkpoint(args.checkpoint)), **_kind(model, ckpt), **result}
    if result["confusion"] is not None:  # single-label: the evaluated set's top-1 with its 95% interval
        result["top1_ci95"] = accuracy_entry(result["top1"], result["num_samples"])["ci95"]
    if args.test:
        from vidconv_edge.train.heldout import heldout_top1

        result["heldout"] = heldout_top1(model, ckpt, args.test, [(dataset.items, "this evaluation")],
                                         args.batch_size, not args.quiet, args.device)  # fmt: skip
    if args.out:
        out = Path(args.out)
        with atomic_path(out / "metrics.json") as tmp:
            tmp.write_text(json.dumps(result, indent=1))
        if result["confusion"] is not None:
            plot_confusion(result["confusion"], list(ckpt["class_names"]), out / "confusion.png")
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "confusion"}))
        return 0
    _print_eval(result, list(ckpt["class_names"]))
    return 0


def _kind(model, meta: dict) -> dict:
    """``backend`` and ``precision`` (``float`` or the bit widths, e.g. ``W8A8``) of what was evaluated."""
    from vidconv_edge.export.runtime import OnnxModel

    precision = "float"
    if "quant" in meta:
        from vidconv_edge.quant.bits import QuantBits

        precision = QuantBits.from_dict(meta["quant"]).label()
    from vidconv_edge.apps.artifacts import HwGraphModel

    backend = "onnxruntime" if isinstance(model, OnnxModel) else "finn-sim" if isinstance(model, HwGraphModel) else "torch"
    return {"backend": backend, "precision": precision}


def _print_eval(result: dict, class_names: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    from vidconv_edge.tables import print_table

    table = Table(
        title=f"{result['model']} ({result['precision']}, {result['backend']}) on {result['num_samples']} videos "
        f"({result['views']} views, {result['order']} order)"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("top1", "top5", "mean_class_acc", "mAP"):
        if key in result:
            table.add_row(key, f"{100 * result[key]:.2f}%")
    if "top1_ci95" in result:
        lo, hi = result["top1_ci95"]
        table.add_row("top1 95% interval", f"{100 * lo:.1f}-{100 * hi:.1f}%")
    table.add_row("loss", f"{result['loss']:.4f}")
    if "heldout" in result:
        from vidconv_edge.train.metrics import format_accuracy

        table.add_row("held-out test top1", format_accuracy(result["heldout"]))
    console = Console()
    print_table(table, console)
    if result["confusion"] is not None and len(class_names) <= 20:
        conf = Table(title="confusion (rows: true, columns: predicted)")
        conf.add_column("")
        for i in range(len(class_names)):
            conf.add_column(str(i), justify="right")
        for i, row in enumerate(result["confusion"]):
            conf.add_row(f"{i} {class_names[i]}", *[str(v) if v else "." for v in row])
        print_table(conf, console)


def _predict(args: argparse.Namespace) -> int:
    from vidconv_edge.apps.artifacts import load_eval_model
    from vidconv_edge.train.eval_data import checkpoint_recipe
    from vidconv_edge.train.evaluate import predict

    model, ckpt = load_eval_model(_checkpoint(args.checkpoint))
    top = predict(model, list(ckpt["class_names"]), args.video, args.topk, checkpoint_recipe(ckpt).data, args.device)
    if args.json:
        print(json.dumps({"video": args.video, "model": ckpt["model"], "predictions": [{"label": l, "prob": p} for l, p in top]}))
        return 0
    width = max(len(label) for label, _ in top)
    for label, prob in top:
        print(f"{label:<{width}}  {100 * prob:6.2f}%")
    return 0
