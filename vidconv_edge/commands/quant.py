"""`vidconv-edge quantize`: calibrate (PTQ) and fine-tune (QAT) an 8-bit (or W/A-mixed) model."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    from vidconv_edge.quant.mixes import DEFAULT_MIXES  # no Brevitas import

    p = sub.add_parser("quantize", help="quantize a float checkpoint: calibration, then optional QAT (Brevitas)")
    p.add_argument("checkpoint", nargs="?", help="float checkpoint (.pt) of vic_edge / sevnet_edge (default: the bundled vic_edge)")
    p.add_argument("--data", required=True, help="dataset folder (class folders or list files)")
    p.add_argument("--out", required=True, help="run folder for the quantized checkpoints and reports")
    p.add_argument("--epochs", type=int, default=0, help="QAT epochs after calibration (default 0: calibration only)")
    p.add_argument("--calib-batches", type=int, default=8, help="batches of training clips for calibration")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--bits", type=int, default=8, help="weight and activation bits (2, 4 or 8)")
    p.add_argument("--weight-bits", type=int, help="weight bits (overrides --bits)")
    p.add_argument("--act-bits", type=int, help="activation bits (overrides --bits)")
    p.add_argument("--early-bits", help="bits of the early part: 8, or W8A4 / 8,4 for weights,activations")
    p.add_argument("--later-bits", help="bits of the later part, as --early-bits")
    p.add_argument("--bias-correction", action="store_true", help="bias correction after calibration")
    p.add_argument("--lr", type=float, default=1e-4, help="QAT learning rate")
    p.add_argument("--distill", type=float, default=0.0, metavar="W",
                   help="QAT loss: W x distillation from the float model + (1 - W) x cross-entropy (0..1, default 0)")
    p.add_argument("--freeze-bn", action="store_true", help="QAT keeps the BatchNorm statistics of the float model")
    p.add_argument("--resume", action="store_true", help="continue the QAT run in --out")
    p.add_argument("--report", action="store_true", help="per-layer error table (quantized vs float)")
    p.add_argument("--verify", type=int, default=0, metavar="N",
                   help="export QONNX + QDQ into --out and check them on N validation clips")  # fmt: skip
    p.add_argument("--mixes", nargs="*", metavar="MIX",
                   help="quantize at each bit-width mix (W8A4, or W8A8/W8A4 for early/later; default: "
                   f"{' '.join(DEFAULT_MIXES)}) into --out/MIX and print their val top-1 side by side")  # fmt: skip
    p.add_argument("--test", metavar="DIR",
                   help="held-out test set (a folder with test.txt, or a list file) disjoint from --data: float and "
                   "quantized top-1 on it with n and a 95%% interval")  # fmt: skip
    p.add_argument("--val", metavar="DIR",
                   help="clips (a folder with test.txt, or a list file) that replace --data's validation split for "
                   "every choice (PTQ or QAT, the best QAT epoch), e.g. synth --heldout clips of footage the float "
                   "model never saw")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars / progress lines")
    p.add_argument("--json", action="store_true", help="print the summary (--mixes: the table) as one JSON object")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from vidconv_edge.assets import default_checkpoint
    from vidconv_edge.quant.bits import make_bits
    from vidconv_edge.quant.pipeline import quantize

    args.checkpoint = args.checkpoint or str(default_checkpoint())
    if args.mixes is not None:
        return _mixes(args)
    bits = make_bits(args.bits, args.weight_bits, args.act_bits, args.early_bits, args.later_bits)
    s = quantize(
        args.checkpoint, args.data, args.out, epochs=args.epochs, calib_batches=args.calib_batches, bits=bits,
        batch_size=args.batch_size, bias_correction=args.bias_correction, report=args.report, lr=args.lr,
        resume=args.resume, seed=args.seed, progress=not args.quiet, test=args.test, distill=args.distill,
        freeze_bn=args.freeze_bn, val=args.val,
    )  # fmt: skip
    check = _verify(args, s) if args.verify else None
    if args.json:
        print(json.dumps({**s, **({"verify": check} if check else {})}))
        return 0
    console = Console()
    console.print(f"{s['model']} {s['bits']['label']}: val top-1 float {s['float_top1']:.4f}, calibrated {s['ptq_top1']:.4f}"
                  + (f", QAT {s['qat_top1']:.4f}" if "qat_top1" in s else "") + f"  ({s['val_videos']} videos{' of ' + s['val'] if s['val'] else ''})")  # fmt: skip
    if "heldout" in s:
        from vidconv_edge.train.metrics import format_accuracy

        h = s["heldout"]
        console.print(f"held-out test top-1 ({h['quant']['list']}): float {format_accuracy(h['float'])}, "
                      f"{s['bits']['label']} {format_accuracy(h['quant'])}")  # fmt: skip
    kept = " (the calibrated model: QAT did not beat it on val)" if "qat_top1" in s and s["final"] == "calibrated" else ""
    console.print(f"quantized checkpoint: {s['files']['quantized']}{kept}")
    if args.report:
        from vidconv_edge.quant.report import print_layer_report

        print_layer_report(s["layers"])
        console.print(f"worst layers: {', '.join(s['worst_layers'])}  (JSON: {s['files']['layer_errors']})")
    if check:
        console.print_json(json.dumps(check))
    return 0


def _mixes(args: argparse.Namespace) -> int:
    from vidconv_edge.errors import UserError
    from vidconv_edge.quant.mixes import DEFAULT_MIXES, compare_mixes, print_mixes

    single = {"--bits": args.bits != 8, "--weight-bits": args.weight_bits, "--act-bits": args.act_bits,
              "--early-bits": args.early_bits, "--later-bits": args.later_bits, "--report": args.report,
              "--verify": args.verify, "--resume": args.resume, "--test": args.test}  # fmt: skip
    given = [k for k, v in single.items() if v]
    if given:
        raise UserError(f"{', '.join(given)} apply to one quantization, not to --mixes")
    result = compare_mixes(
        args.checkpoint, args.data, args.out, args.mixes or DEFAULT_MIXES, epochs=args.epochs,
        calib_batches=args.calib_batches, batch_size=args.batch_size, bias_correction=args.bias_correction,
        lr=args.lr, seed=args.seed, progress=not args.quiet, distill=args.distill, freeze_bn=args.freeze_bn,
        val=args.val,
    )  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        print_mixes(result, args.out)
    return 0


def _verify(args: argparse.Namespace, summary: dict) -> dict:
    import itertools

    import torch
    from torch.utils.data import DataLoader

    from vidconv_edge.data import build_datasets
    from vidconv_edge.export.verify import verify_exports
    from vidconv_edge.models.loading import model_from_checkpoint
    from vidconv_edge.quant.model import quant_model_from_checkpoint

    qmodel, ckpt = quant_model_from_checkpoint(summary["files"]["quantized"])
    float_model, _ = model_from_checkpoint(args.checkpoint)
    _, val_ds, _ = build_datasets(args.data, float_model.input_spec, seed=args.seed)
    loader = DataLoader(val_ds, batch_size=args.verify, shuffle=False)
    clips = torch.cat([c for c, _ in itertools.islice(loader, 1)])
    return verify_exports(float_model, qmodel, clips, args.out, ckpt["class_names"])
