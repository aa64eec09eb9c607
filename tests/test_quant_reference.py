"""The quantized models compute what ``tests/data/quant_reference.npz`` recorded (``scripts/make_quant_reference.py``):
same state-dict keys, the same logits, bundled quantized checkpoints loading key for key.

Recorded on one machine; on another CPU float summation order differs in the last bits, which moves a
calibrated scale or a rounding by a hair: on an AMD EPYC with AVX2, 9 of the 112 logits differ by one or two output
steps (at most 1.6% of the largest logit), the others by < 1e-6. So logits must agree within 2% of the largest
logit, and every clip's top-1 must be the reference's; any change to the model's structure moves them far more."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from vidconv_edge.assets import ASSETS
from vidconv_edge.checkpoint import load_checkpoint
from vidconv_edge.quant.model import quant_model_from_checkpoint

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "quant_reference.npz"


def _script():
    spec = importlib.util.spec_from_file_location("make_quant_reference", ROOT / "scripts" / "make_quant_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def computed() -> dict[str, np.ndarray]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the reference was made
    try:
        return _script().compute()
    finally:
        torch.set_num_threads(threads)


def test_same_cases_as_the_reference(computed):
    assert sorted(computed) == sorted(np.load(REFERENCE).files)


@pytest.mark.parametrize("case", [
    f"{name}_{p}" for name in ("vic_edge", "sevnet_edge") for p in ("W8A8", "W8A4", "W4A4", "w8a4_checkpoint")
])  # fmt: skip
def test_keys_and_logits_equal_the_reference(computed, case):
    ref = np.load(REFERENCE)
    assert computed[f"{case}/keys"].tolist() == ref[f"{case}/keys"].tolist()
    got, want = computed[f"{case}/logits"], ref[f"{case}/logits"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=0.02 * np.abs(want).max())
    assert got.argmax(1).tolist() == want.argmax(1).tolist()


@pytest.mark.parametrize("name", ["vic_edge", "sevnet_edge"])
def test_bundled_quantized_checkpoints_load_key_for_key(name):
    ckpt = load_checkpoint(ASSETS / f"{name}_w8a4.pt")
    qmodel, _ = quant_model_from_checkpoint(ckpt)
    missing, unexpected = qmodel.load_state_dict(ckpt["state_dict"], strict=False)
    assert missing == [] and unexpected == []
