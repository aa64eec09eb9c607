"""QDQ int8 in ONNX Runtime vs the Brevitas model, on the bundled trained checkpoints, per precision.

    python benchmarks/qdq_bound.py [--per-class 4] [--calib-per-class 2] [--work DIR] [--json]

For each bundled model (vic_edge, sevnet_edge) and precision (W8A8, W8A4, W4A4): PTQ calibration on clips of the
built-in *training* footage, QDQ export, then on held-out camera-motion clips (built-in test footage) the
logits of ORT's int8 kernels (QLinearConv, ...) against Brevitas in PyTorch: max and mean |difference| in output
quantization steps, and top-1 agreement. ``tests/test_quant.py::test_qdq_bound_on_the_bundled_trained_models``
holds the max at each precision.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from vidconv_edge.assets import ASSETS

MODELS = ("vic_edge", "sevnet_edge")
MIXES = ("W8A8", "W8A4", "W4A4")


def camera_clips(work: Path, ckpt: dict, per_class: int, heldout: bool, seed: int) -> torch.Tensor:
    """uint8 clips (N, T, 3, H, W) of ``per_class`` camera-motion videos per class, sampled as the model expects."""
    from vidconv_edge.data.camera_motion import write_camera_motion_dataset
    from vidconv_edge.train.eval_data import eval_dataset

    size = int(ckpt["input_spec"]["size"])
    name = f"{'test' if heldout else 'calib'}_{size}_{per_class}_{seed}"
    data = work / name
    if not (data / "synth.json").is_file():
        footage = ("builtin:test",) if heldout else ("builtin:train",)
        write_camera_motion_dataset(data, footage, per_class=per_class, size=size, seed=seed, heldout=heldout,
                                    classes=list(ckpt["class_names"]), progress=False)  # fmt: skip
    listed = data / ("test.txt" if heldout else "train.txt")
    ds = eval_dataset(data, ckpt, list_file=listed)
    return torch.stack([ds[i][0] for i in range(len(ds))])


def calibrated(ckpt: dict, mix: str, calib: torch.Tensor) -> torch.nn.Module:
    """The checkpoint's model quantized at ``mix`` and PTQ-calibrated on ``calib`` (uint8 clips)."""
    from vidconv_edge.models.loading import model_from_checkpoint
    from vidconv_edge.quant.bits import parse_mix
    from vidconv_edge.quant.calibrate import calibrate
    from vidconv_edge.quant.model import quantize_model

    torch.manual_seed(0)
    float_model, _ = model_from_checkpoint(ckpt)
    q = quantize_model(float_model.eval(), parse_mix(mix)).eval()
    calibrate(q, [b.float() for b in calib.split(4)], progress=False)
    return q


def qdq_vs_brevitas(qmodel: torch.nn.Module, clips: torch.Tensor, work: Path) -> dict:
    """max / mean |ORT int8 - Brevitas| in output steps and top-1 agreement over ``clips``."""
    from vidconv_edge.export.qdq import export_qdq, run_ort
    from vidconv_edge.quant.model import output_step

    path = work / "q.onnx"
    export_qdq(qmodel, path)
    x = clips.float()
    with torch.no_grad():
        ref = qmodel(x).numpy()
    ort = run_ort(path, x.numpy())
    steps = np.abs(ort - ref) / output_step(qmodel)
    return {
        "clips": len(x),
        "max_steps": float(np.round(steps.max(), 3)),
        "mean_steps": float(steps.mean()),
        "logits_differing": int((steps > 0.5).sum()),
        "logits": int(steps.size),
        "top1_agreement": float((ort.argmax(1) == ref.argmax(1)).mean()),
    }


def measure(work: Path, per_class: int, calib_per_class: int, models=MODELS, mixes=MIXES) -> list[dict]:
    """One row per model x precision."""
    from vidconv_edge.checkpoint import load_checkpoint

    rows = []
    for name in models:
        ckpt = load_checkpoint(ASSETS / f"{name}.pt")
        test = camera_clips(work, ckpt, per_class, heldout=True, seed=0)
        calib = camera_clips(work, ckpt, calib_per_class, heldout=False, seed=7)
        for mix in mixes:
            rows.append({"model": name, "bits": mix, **qdq_vs_brevitas(calibrated(ckpt, mix, calib), test, work)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-class", type=int, default=4, help="held-out clips per class")
    p.add_argument("--calib-per-class", type=int, default=2, help="training-footage clips per class for PTQ")
    p.add_argument("--work", type=Path, help="folder for the generated clips (default: a temporary folder)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = measure(work, args.per_class, args.calib_per_class)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| model | bits | clips | max steps | mean steps | logits differing | top-1 agreement |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['bits']} | {r['clips']} | {r['max_steps']:g} | {r['mean_steps']:.4f} | "
              f"{r['logits_differing']} of {r['logits']} | {100 * r['top1_agreement']:.1f}% |")  # fmt: skip


if __name__ == "__main__":
    main()
