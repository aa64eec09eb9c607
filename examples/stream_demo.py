"""Streaming demo: the bundled vic_edge checkpoint on the bundled sample video, no arguments needed.

Each new frame runs only the early-net; the later-net runs on the collage of the last 9 frames'
maps. Writes ``stream-demo/predictions.jsonl`` and ``stream-demo/overlay.mp4`` (label, confidence
and fps drawn on every frame) and prints the predictions and a summary with latencies.

    python examples/stream_demo.py                      # bundled model + sample video
    python examples/stream_demo.py --source webcam:0    # a camera (needs OpenCV)
    python examples/stream_demo.py --model onnx_parts/  # early.onnx + later.onnx with onnxruntime
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from vidconv_edge.errors import UserError
from vidconv_edge.stream import print_summary, run_stream


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=None, help="video file, frame folder, webcam:N or URL (default: the sample)")
    ap.add_argument("--model", default=None, help="checkpoint, ONNX early part/folder (default: bundled vic_edge)")
    ap.add_argument("--backend", default=None, help="torch | onnxruntime (default: from the model file)")
    ap.add_argument("--out", type=Path, default=Path("stream-demo"), help="output folder")
    ap.add_argument("--stride", type=int, default=1, help="a prediction every K frames")
    ap.add_argument("--recompute", action="store_true", help="check each window against the whole model")
    ap.add_argument("--show", action="store_true", help="also show a live window (needs a display and OpenCV)")
    args = ap.parse_args(argv)
    console = Console()
    try:
        if args.source is None:
            from vidconv_edge.assets import sample_video

            args.source = sample_video()
        every = max(1, 9 // args.stride)

        def report(pred) -> None:
            if report.n % every == 0:
                label, prob = pred.top[0]
                console.print(f"frame {pred.frame:4d}  t={pred.time:6.2f}s  {label:<12} {prob * 100:5.1f}%")
            report.n += 1

        report.n = 0
        summary = run_stream(
            args.source,
            args.model,
            backend=args.backend,
            stride=args.stride,
            jsonl=args.out / "predictions.jsonl",
            overlay=args.out / "overlay.mp4",
            show=args.show,
            recompute=args.recompute,
            progress=False,  # the printed predictions show the progress
            on_prediction=report,
        )
    except UserError as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    print_summary(summary, console)
    console.print(f"wrote {summary['jsonl']} and {summary['overlay']}")
    return 130 if summary["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
