"""Our verification step: the HW-abstraction graph, executed in Python, equals the QONNX model bit for bit.

Runs after the dataflow partition and before SpecializeLayers (after it, ``_hls``/``_rtl`` nodes only run
in cppsim/rtlsim, which need the Xilinx tools). Inputs and expected outputs come from the QONNX model
executed in float64 (``hw.reference``) on frames of a real video clip (``cfg.verify_input_npy`` /
``verify_expected_output_npy``, both already in the accelerator's integer NHWC form).
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

from vidconv_edge.hw.config import HwBuildConfig
from vidconv_edge.hw.errors import VerificationFailed


TIE_HINT = (
    "; +-1 steps are an activation within rounding error of a quantization boundary (the reference and the "
    "thresholds are computed in float64; a value within ~1e-16 of a boundary would still differ). Pass "
    "--no-strict-verify to record the mismatch and continue"
)


def execute_hw_graph(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    """Outputs of the HW-layer graph for a batch ``x`` (one sample at a time, batch 1 graph)."""
    inp, out = model.graph.input[0].name, model.graph.output[0].name
    return np.concatenate([execute_onnx(model, {inp: x[i : i + 1].astype(np.float32)})[out] for i in range(len(x))])


def step_verify_hw_python(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Execute the partition in Python on the verification samples; stop loudly unless bit-exact."""
    x = np.load(cfg.verify_input_npy)[: cfg.verify_samples]
    expected = np.load(cfg.verify_expected_output_npy)[: cfg.verify_samples]
    got = execute_hw_graph(model, x)
    if got.shape != expected.shape:
        raise VerificationFailed(
            f"{cfg.part_name}-net: the HW graph gives shape {list(got.shape)}, the QONNX model {list(expected.shape)}"
        )
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    mismatches = int((diff > 0).sum())
    cfg.io.verification = {
        "samples": int(len(x)),
        "method": "python execution of the HW-abstraction graph vs the QONNX model",
        "bit_exact": mismatches == 0,
        "mismatches": mismatches,
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "values": int(diff.size),
    }
    if mismatches and cfg.strict_verify:
        hint = TIE_HINT if diff.max() == 1 else ""
        raise VerificationFailed(
            f"{cfg.part_name}-net: the HW graph differs from the QONNX model in {mismatches} of {diff.size} "
            f"output values (max |diff| {diff.max():g} integer steps) on {len(x)} samples{hint}"
        )
    return model
