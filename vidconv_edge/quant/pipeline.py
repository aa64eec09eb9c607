"""``quantize``: float checkpoint -> calibrated (PTQ) quantized checkpoint -> optional QAT, with accuracy and
per-layer error reports. Files in ``out_dir``: ``calibrated.pt``, (QAT) ``last.pt``/``best.pt``/``metrics.jsonl``,
``quantized.pt`` (the final quantized checkpoint: QAT's best, or the calibrated one if QAT did not beat it on
the validation set), ``quant_summary.json``, (``report``) ``layer_errors.json``.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from vidconv_edge.checkpoint import load_checkpoint
from vidconv_edge.errors import UserError
from vidconv_edge.io import atomic_path
from vidconv_edge.models.loading import model_from_checkpoint
from vidconv_edge.quant.bits import QuantBits, describe
from vidconv_edge.quant.calibrate import calibrate
from vidconv_edge.quant.model import quantize_model, require_float_checkpoint, save_quant_checkpoint

CALIBRATED, FINAL, SUMMARY, LAYERS = "calibrated.pt", "quantized.pt", "quant_summary.json", "layer_errors.json"


def _datasets(data_dir, spec, class_names: list[str], seed: int, recipe=None):
    """(train, val, names) sampled as the float model's recipe says (so top-1 here equals ``vidconv-edge eval``)."""
    from vidconv_edge.train.config import Recipe
    from vidconv_edge.train.loop import build_data

    train_ds, val_ds, names = build_data(recipe or Recipe(), data_dir, spec, seed=seed)
    if list(names) != list(class_names):
        raise UserError(
            f"{data_dir} has other classes ({len(names)}: {', '.join(names[:5])}...) than the checkpoint "
            f"({len(class_names)}: {', '.join(class_names[:5])}...)"
        )
    return train_ds, val_ds, names


def _pixel_batches(dataset, batch_size: int, limit: int | None) -> list[torch.Tensor]:
    """uint8 clips -> float pixel values 0..255 (what the quantized model takes)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    return [clips.float() for clips, _ in itertools.islice(loader, limit)]


def _top1(model, dataset, batch_size: int, progress: bool) -> float:
    from vidconv_edge.train.evaluate import evaluate

    return float(evaluate(model, dataset, batch_size=batch_size, device="cpu", progress=progress)["top1"])


def quantize(
    checkpoint: str | os.PathLike,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    epochs: int = 0,
    calib_batches: int = 8,
    bits: QuantBits | None = None,
    batch_size: int = 4,
    bias_correction: bool = False,
    report: bool = False,
    lr: float = 1e-4,
    resume: bool = False,
    seed: int = 0,
    progress: bool = True,
    float_top1: float | None = None,
    test: str | os.PathLike | None = None,
    distill: float = 0.0,
    freeze_bn: bool = False,
    val: str | os.PathLike | None = None,
) -> dict:
    """Calibrate (PTQ) the float model of ``checkpoint`` on ``data_dir``, then fine-tune (QAT) ``epochs`` epochs.

    Returns a summary: bit widths, float / calibrated / QAT val top-1, files written, worst layers.
    ``float_top1``: the float model's val top-1 if already known (else it is measured).
    ``distill``: QAT loss weight of knowledge distillation from the float model (0: labels only, 1: the float
    model's scores only; ``vidconv_edge.quant.qat``). ``freeze_bn``: QAT keeps the BatchNorm statistics.
    ``test``: a held-out set (``vidconv_edge.train.heldout``) disjoint from ``data_dir``'s clips: ``heldout`` gets
    the float and the kept quantized model's top-1 on it, with n and 95% intervals.
    ``val``: a set given like ``test`` (e.g. ``synth --heldout`` clips of footage the float model never saw) that
    replaces ``data_dir``'s validation split for every figure and choice here (PTQ or QAT, the best QAT epoch).
    """
    if calib_batches < 1:
        raise UserError(f"calib-batches must be >= 1, got {calib_batches}")
    if epochs < 0:
        raise UserError(f"epochs must be >= 0, got {epochs}")
    from vidconv_edge.quant.qat import check_distill

    check_distill(distill)
    if distill and not epochs:
        raise UserError("distill weights the QAT loss: give QAT epochs (--epochs N) too")
    if freeze_bn and not epochs:
        raise UserError("freeze-bn applies to QAT: give QAT epochs (--epochs N) too")
    bits = bits or QuantBits()
    ckpt = load_checkpoint(checkpoint)
    require_float_checkpoint(ckpt, checkpoint)
    float_model, _ = model_from_checkpoint(ckpt)
    class_names = list(ckpt["class_names"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recipe = _recipe_of(ckpt)
    train_ds, val_ds, _ = _datasets(data_dir, float_model.input_spec, class_names, seed, recipe)
    if val is not None:
        val_ds = _selection_set(val, ckpt, train_ds)

    torch.manual_seed(seed)
    if resume and (out / CALIBRATED).is_file():
        from vidconv_edge.quant.model import quant_model_from_checkpoint

        qmodel, _ = quant_model_from_checkpoint(out / CALIBRATED)
        n_calib = None
    else:
        qmodel = quantize_model(float_model.eval(), bits).eval()
        n_calib = calibrate(qmodel, _pixel_batches(train_ds, batch_size, calib_batches), bias_correction, progress)
        carried = {"recipe": ckpt["recipe"]} if "recipe" in ckpt else {}  # eval samples clips as for the float model
        save_quant_checkpoint(
            out / CALIBRATED, qmodel, class_names, calib_batches=n_calib, bias_correction=bias_correction, **carried
        )
    summary: dict = {
        "model": float_model.name,
        "bits": describe(qmodel.bits),
        "checkpoint": str(checkpoint),
        "calib_batches": n_calib,
        "bias_correction": bias_correction,
        "distill": distill if epochs else None,
        "freeze_bn": freeze_bn if epochs else None,
        "val_videos": len(val_ds),
        "val": str(val) if val is not None else None,
        "float_top1": _top1(float_model, val_ds, batch_size, progress) if float_top1 is None else float_top1,
        "ptq_top1": _top1(qmodel, val_ds, batch_size, progress),
    }
    final = out / CALIBRATED
    if epochs:
        from vidconv_edge.quant.qat import run_qat

        fit = run_qat(qmodel, (train_ds, val_ds, class_names), out, epochs, recipe, lr, batch_size, resume,
                      progress=progress, teacher=float_model, distill=distill, freeze_bn=freeze_bn)  # fmt: skip
        summary["qat"] = {k: fit[k] for k in ("epochs_done", "best_top1", "best_epoch") if k in fit}
        from vidconv_edge.quant.model import quant_model_from_checkpoint

        qat_model, _ = quant_model_from_checkpoint(out / "best.pt")
        summary["qat_top1"] = _top1(qat_model, val_ds, batch_size, progress)
        if summary["qat_top1"] >= summary["ptq_top1"]:  # QAT can lose on a small set: keep the better one
            final, qmodel = out / "best.pt", qat_model
        else:  # QAT trained ``qmodel`` in place
            qmodel, _ = quant_model_from_checkpoint(final)
    shutil.copyfile(final, out / FINAL)
    summary["final"] = "qat" if final.name == "best.pt" else "calibrated"
    summary["quant_top1"] = summary["qat_top1"] if summary["final"] == "qat" else summary["ptq_top1"]
    summary["top1_drop"] = summary["float_top1"] - summary["quant_top1"]
    if test is not None:
        summary["heldout"] = _heldout(float_model, qmodel, ckpt, test, (train_ds, val_ds), batch_size, progress)
    summary["files"] = {"quantized": str(out / FINAL), "calibrated": str(out / CALIBRATED)}
    if report:
        from vidconv_edge.data.transforms import normalize
        from vidconv_edge.quant.report import layer_errors, worst_layers, write_layer_report

        loader = DataLoader(val_ds, batch_size=batch_size, shuffle=False, num_workers=0)
        clips = [c for c, _ in itertools.islice(loader, calib_batches)]
        spec = float_model.input_spec
        rows = layer_errors(float_model, qmodel, [normalize(c, spec.mean, spec.std) for c in clips], [c.float() for c in clips])
        write_layer_report(rows, out / LAYERS)
        summary["layers"] = rows
        summary["worst_layers"] = [r["layer"] for r in worst_layers(rows)]
        summary["files"]["layer_errors"] = str(out / LAYERS)
    with atomic_path(out / SUMMARY) as tmp:
        tmp.write_text(json.dumps({k: v for k, v in summary.items() if k != "layers"}, indent=2))
    return summary


def _selection_set(val: str | os.PathLike, ckpt: dict, train_ds):
    """The clips of ``val`` (folder with test.txt or a list file); none of them may be a training clip."""
    from vidconv_edge.train.eval_data import eval_dataset
    from vidconv_edge.train.heldout import require_disjoint, test_list

    root, listed = test_list(val, option="--val")
    val_ds = eval_dataset(root, ckpt, listed)
    require_disjoint(val_ds.items, train_ds.items, "calibration and QAT training", option="--val")
    return val_ds


def _heldout(float_model, qmodel, ckpt: dict, test, datasets, batch_size: int, progress: bool) -> dict:
    """Float and quantized top-1 on the held-out set; none of its clips calibrated, trained or selected."""
    from vidconv_edge.train.heldout import heldout_top1

    train_ds, val_ds = datasets
    used = [(train_ds.items, "calibration and QAT training"), (val_ds.items, "selection (validation)")]
    return {name: heldout_top1(model, ckpt, test, used, batch_size, progress)
            for name, model in (("float", float_model), ("quant", qmodel))}  # fmt: skip


def _recipe_of(ckpt: dict):
    from vidconv_edge.train.config import recipe_from_dict

    if "recipe" not in ckpt:
        return None
    data = {k: v for k, v in ckpt["recipe"].items() if k not in ("name",)}
    return recipe_from_dict(data, ckpt["recipe"].get("name", "default"))
