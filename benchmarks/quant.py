"""Latency per clip: ONNX Runtime int8 (QDQ) vs ONNX Runtime fp32 vs torch fp32, side by side in one run.

    python benchmarks/quant.py [--size 64] [--runs 20] [--threads 1] [--profile]

Models: vic_edge (int8 from its Brevitas model, and from ORT quantize_static on the float ONNX) and
vic_tiny (quantize_static). Weights are random (latency does not depend on them); calibration uses
random clips. Also prints which ops ORT runs in int8 after its graph optimisations, to explain the ratios,
and with ``--profile`` ORT's per-op-type kernel time of fp32 vs int8 (where the time goes).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from brevitas.graph.calibrate import calibration_mode

from vidconv_edge.export.onnx import export_onnx
from vidconv_edge.export.qdq import export_qdq, int8_kernel_report, ort_session
from vidconv_edge.models import create_model
from vidconv_edge.quant.model import quantize_model


def _time(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def _ort_ms(path: Path, x: np.ndarray, runs: int, threads: int) -> float:
    sess = ort_session(path, threads=threads)
    name = sess.get_inputs()[0].name
    return _time(lambda: sess.run(None, {name: x}), runs)


def _profile(path: Path, x: np.ndarray, runs: int, threads: int) -> dict[str, float]:
    """Per-op-type kernel time in microseconds per run, averaged over ``runs`` (ORT's profiler)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    so.enable_profiling = True
    so.profile_file_prefix = str(path.with_suffix(""))
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for _ in range(runs):
        sess.run(None, {name: x})
    trace = sess.end_profiling()
    events = json.loads(Path(trace).read_text())
    os.remove(trace)
    per_op: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"] / runs
    return dict(per_op)


def _print_profiles(profiles: dict[str, dict[str, float]]) -> None:
    ops = sorted({op for p in profiles.values() for op in p}, key=lambda op: -max(p.get(op, 0) for p in profiles.values()))
    print("  ORT kernel time per op type, us/clip: " + " | ".join(profiles))
    for op in ops:
        print(f"    {op:22s}" + "".join(f" {p.get(op, 0.0):10.1f}" for p in profiles.values()))
    print(f"    {'total':22s}" + "".join(f" {sum(p.values()):10.1f}" for p in profiles.values()))


def bench(name: str, size: int, runs: int, threads: int, tmp: Path, profile: bool = False) -> list[dict]:
    torch.manual_seed(0)
    model = create_model(name, img_size=size).eval()
    spec = model.input_spec
    pixels = torch.randint(0, 256, (1, spec.frames, 3, size, size)).float()
    mean = torch.tensor(spec.mean).view(1, 1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 1, 3, 1, 1)
    x = ((pixels / 255 - mean) / std).contiguous()
    calib = [((torch.randint(0, 256, (4, spec.frames, 3, size, size)).float() / 255 - mean) / std).numpy()]
    rows = []
    with torch.no_grad():
        rows.append({"backend": "torch fp32", "ms": _time(lambda: model(x), runs)})
    export_onnx(model, tmp / f"{name}_fp32.onnx")
    rows.append({"backend": "ORT fp32", "ms": _ort_ms(tmp / f"{name}_fp32.onnx", x.numpy(), runs, threads),
                 **({"profile": _profile(tmp / f"{name}_fp32.onnx", x.numpy(), runs, threads)} if profile else {})})  # fmt: skip
    export_qdq(model, tmp / f"{name}_static.onnx", calib=calib)
    rows.append({"backend": "ORT int8 (quantize_static)", "ms": _ort_ms(tmp / f"{name}_static.onnx", x.numpy(), runs, threads),
                 "kernels": int8_kernel_report(tmp / f"{name}_static.onnx")})  # fmt: skip
    if name.endswith("_edge"):
        q = quantize_model(model).eval()
        with torch.no_grad(), calibration_mode(q):
            q(torch.randint(0, 256, (4, spec.frames, 3, size, size)).float())
        export_qdq(q, tmp / f"{name}_brevitas.onnx")
        rows.append({"backend": "ORT int8 (Brevitas QCDQ)", "ms": _ort_ms(tmp / f"{name}_brevitas.onnx", pixels.numpy(), runs, threads),
                     "kernels": int8_kernel_report(tmp / f"{name}_brevitas.onnx"),
                     **({"profile": _profile(tmp / f"{name}_brevitas.onnx", pixels.numpy(), runs, threads)} if profile else {})})  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", nargs="+", default=["vic_edge", "vic_tiny"])
    ap.add_argument("--profile", action="store_true", help="per-op-type ORT kernel time, fp32 vs int8")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        for name in args.models:
            rows = bench(name, args.size, args.runs, args.threads, Path(d), args.profile)
            base = next(r["ms"] for r in rows if r["backend"] == "ORT fp32")
            print(f"\n{name}  clip 9x{args.size}x{args.size}, {args.threads} thread(s), median of {args.runs}")
            print(f"  {'backend':28s} {'ms/clip':>9s} {'vs ORT fp32':>12s}")
            for r in rows:
                print(f"  {r['backend']:28s} {r['ms']:9.2f} {base / r['ms']:11.2f}x")
            for r in rows:
                if "kernels" in r:
                    k = r["kernels"]
                    print(f"  {r['backend']}: int8 kernels {k['int8']}, float Conv/MatMul left {k['float_conv_matmul']}")
            profiles = {r["backend"]: r["profile"] for r in rows if "profile" in r}
            if profiles:
                _print_profiles(profiles)


if __name__ == "__main__":
    main()
