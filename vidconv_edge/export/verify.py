"""Checks of the exported quantized files against the Brevitas model, and top-1 agreement.

- QONNX run by qonnx's executor vs Brevitas: same argmax, max |diff| within one output step.
- QDQ run by ONNX Runtime vs Brevitas: as written (no graph optimisation: the QDQ semantics) and with ORT's
  int8 kernels (QLinearConv, ...), whose requantization rounding can put a logit a few steps off (the measured
  bound on the bundled models: README "8-bit"); ``steps`` reports it.
- float model vs QONNX vs QDQ: top-1 agreement in % over the given clips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vidconv_edge.data.transforms import normalize
from vidconv_edge.export.qdq import export_qdq, run_ort
from vidconv_edge.export.qonnx import export_qonnx, run_qonnx
from vidconv_edge.quant.model import output_step


def _compare(ref: np.ndarray, out: np.ndarray, step: float) -> dict:
    diff = float(np.abs(out - ref).max())
    return {
        "max_abs_diff": diff,
        "steps": diff / step,
        "within_one_step": diff <= step * (1 + 1e-3),
        "argmax_equal": float((out.argmax(1) == ref.argmax(1)).mean()),
    }


def verify_exports(float_model, qmodel, clips_uint8: torch.Tensor, out_dir, class_names=None) -> dict:
    """Export QONNX and QDQ (full clip) to ``out_dir`` and check them on ``clips_uint8`` (N, T, 3, H, W)."""
    out = Path(out_dir)
    qonnx_path, qdq_path = out / "model.qonnx.onnx", out / "model.qdq.onnx"
    export_qonnx(qmodel, qonnx_path, "full", class_names)
    export_qdq(qmodel, qdq_path, "full", class_names=class_names)
    pixels = clips_uint8.float()
    spec = float_model.input_spec
    with torch.no_grad():
        ref = qmodel.eval()(pixels).numpy()
        fl = float_model.eval()(normalize(clips_uint8, spec.mean, spec.std)).numpy()
    qo = run_qonnx(qonnx_path, pixels.numpy())
    qd = run_ort(qdq_path, pixels.numpy())
    qd_ref = run_ort(qdq_path, pixels.numpy(), optimize=False)
    step = output_step(qmodel)
    agree = lambda a, b: 100.0 * float((a.argmax(1) == b.argmax(1)).mean())  # noqa: E731
    return {
        "clips": len(clips_uint8),
        "output_step": step,
        "qonnx_vs_brevitas": _compare(ref, qo, step),
        "qdq_vs_brevitas": _compare(ref, qd_ref, step),
        "qdq_int8_kernels_vs_brevitas": _compare(ref, qd, step),
        "top1_agreement_pct": {
            "float_vs_brevitas": agree(fl, ref),
            "float_vs_qonnx": agree(fl, qo),
            "float_vs_qdq": agree(fl, qd),
            "qonnx_vs_qdq": agree(qo, qd),
        },
        "files": {"qonnx": str(qonnx_path), "qdq": str(qdq_path)},
    }
