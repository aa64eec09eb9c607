"""Write ``tests/data/tiny_fpga/``: a small FPGA build that the fast streaming tests run finn-sim and the pynq host
path on, and its whole-clip QONNX model (the independent reference those tests compare every streamed output to).

A ``vic_edge`` with dims (8, 16, 16, 16), depths (1, 1, 1, 1) and He-scaled random weights (logits that depend on
the frame order) at 9x32x32, calibrated at W8A4 on the bundled sample video (PTQ), built for pynq-z2 as far as it
goes without Vivado (~2 min). The target fps folds the streams (SIMD > 1), so the packed DMA buffers hold several
values per word. Kept: ``report.json`` (the parts' io and verification), the parts' QONNX models, each part's
verified HW graph, the deploy bundle, and ``whole_clip.qonnx.onnx``: the quantized model's ``full`` part (the
collage inside the graph), not built by the flow.

    python scripts/make_tiny_fpga_fixture.py [--out tests/data/tiny_fpga]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch
import torch.nn as nn

CLASSES = ["left", "right", "up", "down", "still"]
MODEL = dict(img_size=32, num_classes=len(CLASSES), dims=(8, 16, 16, 16), depths=(1, 1, 1, 1), alpha_init=0.5)
TARGET_FPS = 100_000.0
REFERENCE = "whole_clip.qonnx.onnx"


def order_sensitive(model: nn.Module) -> nn.Module:
    """He-scaled random weights (temporal branch alpha 0.5): logits that depend on the frame order. The default
    init gives logits of ~1e-3 whose order dependence is far below one W8A4 output step."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2 / m.weight[0].numel()) ** 0.5)
    return model.eval()


def quantized_model() -> nn.Module:
    """The W8A4 model, PTQ-calibrated on the sample video (seed 0)."""
    from vidconv_edge.hw.source import calibrated_for_board
    from vidconv_edge.models import create_model
    from vidconv_edge.quant.bits import make_bits

    torch.manual_seed(0)
    return calibrated_for_board(order_sensitive(create_model("vic_edge", **MODEL)), make_bits(8, act_bits=4))


def trimmed_report(report: dict) -> dict:
    """What the stream backends read from report.json: the model and each part's verification and io."""
    keep = ("model", "board", "bits", "part", "design", "verified")
    parts = {name: {"verified": p["verified"], "io": p["io"]} for name, p in report["parts"].items()}
    return {**{k: report[k] for k in keep}, "parts": parts}


def copy_build(build: Path, out: Path) -> None:
    """The files of ``build`` that ``load_build`` and the deploy bundle need."""
    report = json.loads((build / "report.json").read_text())
    out.mkdir(parents=True)
    (out / "report.json").write_text(json.dumps(trimmed_report(report), indent=1) + "\n")
    (out / "qonnx").mkdir(parents=True)
    for part in ("early", "later"):  # the model's metadata; the later-net for a bundle placing it on the ARM cores
        shutil.copy(build / "qonnx" / f"{part}.onnx", out / "qonnx")
    for part in ("early", "later"):
        (out / part / "intermediate_models").mkdir(parents=True)
        for graph in (build / part / "intermediate_models").glob("*_step_verify_hw_python.onnx"):
            shutil.copy(graph, out / part / "intermediate_models")
    shutil.copytree(build / "deploy", out / "deploy", ignore=shutil.ignore_patterns("README.md"))


def main() -> None:
    from vidconv_edge.export.qonnx import export_qonnx
    from vidconv_edge.hw.flow import build_fpga
    from vidconv_edge.quant.model import save_quant_checkpoint

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "tests" / "data" / "tiny_fpga")
    args = ap.parse_args()
    qmodel = quantized_model()
    with tempfile.TemporaryDirectory() as tmp:
        save_quant_checkpoint(Path(tmp) / "q.pt", qmodel, CLASSES)
        report = build_fpga(Path(tmp) / "q.pt", "pynq-z2", Path(tmp) / "fpga", target_fps=TARGET_FPS, log=print)
        if not report["verified"]:
            raise SystemExit("the HW graphs are not bit-exact: no fixture written")
        if args.out.exists():
            shutil.rmtree(args.out)
        copy_build(Path(tmp) / "fpga", args.out)
    export_qonnx(qmodel, args.out / REFERENCE, part="full", class_names=CLASSES)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
