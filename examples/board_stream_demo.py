"""Streaming demo on the FPGA: the deploy bundle of ``vidconv-edge build-fpga`` on a PYNQ board.

The board version of ``stream_demo.py``: each new frame runs the early-net accelerator once, its integer
feature map enters the ring of the last L maps on the ARM cores, and the later-net accelerator runs on
their collage. Needs no torch (see examples/README.md, "On the board"). Writes ``board-demo/predictions.jsonl``
(and ``overlay.mp4`` when PyAV is installed), prints the predictions and a summary with latencies.

    python3 board_stream_demo.py --deploy deploy/ --source frames/        # on the board (pynq backend)
    python3 board_stream_demo.py --deploy deploy/ --source webcam:0       # a USB camera (OpenCV)
    python examples/board_stream_demo.py --sim build/ --source sample     # rehearsal on the PC (finn-sim)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from vidconv_edge.errors import UserError
from vidconv_edge.stream import open_backend, print_summary, run_stream


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--deploy", type=Path, default=Path("deploy"), help="the deploy/ folder copied from the build")
    where.add_argument("--sim", type=Path, default=None, help="a build-fpga folder: run its HW graphs with finn-sim")
    ap.add_argument("--source", default="sample", help="video file, frame folder, webcam:N or URL ('sample': bundled)")
    ap.add_argument("--out", type=Path, default=Path("board-demo"), help="output folder")
    ap.add_argument("--stride", type=int, default=1, help="a prediction every K frames")
    ap.add_argument(
        "--recompute", action="store_true", help="check each window against the whole clip on the accelerator"
    )
    args = ap.parse_args(argv)
    try:
        backend = open_backend(args.sim, "finn-sim") if args.sim else open_backend(args.deploy, "pynq")
        if args.source == "sample":
            from vidconv_edge.assets import sample_video

            args.source = sample_video()
        overlay = args.out / "overlay.mp4" if importlib.util.find_spec("av") else None
        every = max(1, backend.input_spec.frames // args.stride)

        def report(pred) -> None:
            if report.n % every == 0:
                label, prob = pred.top[0]
                print(f"frame {pred.frame:4d}  t={pred.time:6.2f}s  {label:<12} {prob * 100:5.1f}%", flush=True)
            report.n += 1

        report.n = 0
        summary = run_stream(
            args.source, backend, stride=args.stride, jsonl=args.out / "predictions.jsonl", overlay=overlay,
            recompute=args.recompute, progress=False, on_prediction=report,
        )  # fmt: skip
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_summary(summary)
    print(
        f"wrote {summary['jsonl']}"
        + (f" and {summary['overlay']}" if summary["overlay"] else " (no PyAV: no overlay MP4)")
    )
    return 130 if summary["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
