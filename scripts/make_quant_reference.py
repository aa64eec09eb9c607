"""Record what the quantized models compute, to check that a refactor leaves them unchanged.

For the bundled float ``vic_edge.pt`` and ``sevnet_edge.pt`` quantized at W8A8, W8A4 and W4A4 (PTQ: calibrated
on a few seeded random pixel clips) and for the bundled quantized checkpoints (``*_w8a4.pt``): the sorted
state-dict keys and the logits on 2 fixed clips, in ``tests/data/quant_reference.npz``
(``tests/test_quant_reference.py`` compares against it). Run with one torch thread:

    python scripts/make_quant_reference.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vidconv_edge.assets import ASSETS
from vidconv_edge.models.loading import model_from_checkpoint
from vidconv_edge.quant.bits import make_bits
from vidconv_edge.quant.calibrate import calibrate
from vidconv_edge.quant.model import quant_model_from_checkpoint, quantize_model

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "quant_reference.npz"
FLOAT = ("vic_edge", "sevnet_edge")
PRECISIONS = {"W8A8": (8, 8), "W8A4": (8, 4), "W4A4": (4, 4)}  # (weight, activation) bits
CALIBRATION_BATCHES = 3


def _pixel_clips(spec, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, spec.frames, 3, spec.size, spec.size), generator=g).float()


def _record(qmodel: torch.nn.Module) -> tuple[list[str], np.ndarray]:
    with torch.no_grad():
        logits = qmodel.eval()(_pixel_clips(qmodel.input_spec, 2, seed=1234))
    return sorted(qmodel.state_dict()), logits.numpy()


def cases():
    """(case name, quantized model) for every recorded case, calibrated where it is PTQ."""
    for name in FLOAT:
        float_model, _ = model_from_checkpoint(ASSETS / f"{name}.pt")
        for precision, (weight_bits, act_bits) in PRECISIONS.items():
            qmodel = quantize_model(float_model, make_bits(weight_bits=weight_bits, act_bits=act_bits)).eval()
            batches = [_pixel_clips(qmodel.input_spec, 2, seed=100 + i) for i in range(CALIBRATION_BATCHES)]
            calibrate(qmodel, batches, progress=False)
            yield f"{name}_{precision}", qmodel
        qmodel, _ = quant_model_from_checkpoint(ASSETS / f"{name}_w8a4.pt")
        yield f"{name}_w8a4_checkpoint", qmodel


def compute() -> dict[str, np.ndarray]:
    """``{case}/keys`` (sorted state-dict keys) and ``{case}/logits`` of every case."""
    out = {}
    for case, qmodel in cases():
        keys, logits = _record(qmodel)
        out[f"{case}/keys"] = np.array(keys)
        out[f"{case}/logits"] = logits
    return out


def main() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = compute()
    finally:
        torch.set_num_threads(threads)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **ref)
    print(f"{OUT}: {len(ref) // 2} cases, {OUT.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
