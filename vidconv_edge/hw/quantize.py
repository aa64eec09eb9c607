"""Quantization in the build path: a float checkpoint (or the bundled default) to the board's precision.

``quantize_for_board`` runs ``vidconv_edge.quant.pipeline.quantize`` (PTQ calibration, optional QAT
fine-tuning, float / quantized val top-1) on ``--data``, or on a generated set of the checkpoint's own
classes written into the build folder when they are those of a generated task (the bundled models' are:
camera motion over the built-in training footage, never the held-out footage).
The report's ``quantization`` entry shows what the board's precision costs in accuracy.
"""

from __future__ import annotations

import os
from pathlib import Path

from vidconv_edge.errors import UserError

SYNTH_PER_CLASS, SYNTH_SEED = 8, 7  # as the demo: 56 videos for the 7 camera-motion classes, 14 in validation
CALIB_BATCHES = 8


def synthetic_data(out_dir: Path, class_names: list[str], size: int, log=print) -> Path:
    """``out_dir/data``: a generated set of ``class_names`` (kept between builds): camera motion over the built-in
    training footage, or synthetic shapes; UserError for other classes."""
    from vidconv_edge.data.tasks import write_task_dataset

    data = out_dir / "data"
    if not (data / "classes.txt").is_file() or (data / "classes.txt").read_text().split() != list(class_names):
        log(f"writing a calibration/validation set ({SYNTH_PER_CLASS} videos per class) to {data}")
        try:
            write_task_dataset(data, class_names, per_class=SYNTH_PER_CLASS, seed=SYNTH_SEED, size=size)
        except UserError as e:
            raise UserError(
                f"no generated set for the checkpoint's classes ({e}): give --data DIR with videos of its classes "
                "for calibration and validation"
            ) from e
    return data


def quantize_for_board(
    checkpoint: str | os.PathLike,
    bits,
    out_dir: Path,
    data: str | os.PathLike | None = None,
    qat_epochs: int = 0,
    calib_batches: int = CALIB_BATCHES,
    log=print,
) -> tuple[Path, dict]:
    """(quantized checkpoint, summary): PTQ at ``bits`` (+ ``qat_epochs`` of QAT) of a float checkpoint."""
    from vidconv_edge.checkpoint import load_checkpoint
    from vidconv_edge.quant.model import require_float_checkpoint
    from vidconv_edge.quant.pipeline import quantize

    if qat_epochs < 0:
        raise UserError(f"--qat-epochs must be >= 0, got {qat_epochs}")
    ckpt = load_checkpoint(checkpoint)
    require_float_checkpoint(ckpt, checkpoint)
    if data is None:
        data = synthetic_data(out_dir, list(ckpt["class_names"]), int(ckpt["input_spec"]["size"]), log)
    elif not Path(data).is_dir():
        raise UserError(f"--data folder not found: {data}")
    log(f"quantizing to {bits.label()} on {data}" + (f", {qat_epochs} QAT epoch(s)" if qat_epochs else " (PTQ)"))
    summary = quantize(checkpoint, data, out_dir / "quant", epochs=qat_epochs, calib_batches=calib_batches,
                       bits=bits, progress=False)  # fmt: skip
    keep = ("float_top1", "ptq_top1", "qat_top1", "quant_top1", "final", "top1_drop", "val_videos", "calib_batches",
            "qat")
    info = {k: summary[k] for k in keep if k in summary}
    info.update(data=str(data), qat_epochs=qat_epochs, checkpoint=str(checkpoint), bits=bits.label())
    return Path(summary["files"]["quantized"]), info
