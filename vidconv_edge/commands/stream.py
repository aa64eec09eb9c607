"""``vidconv-edge stream``: sliding-window inference on a video file, frame folder, camera or URL."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "stream",
        help="stream a video through a VidConv model (early-net per frame, later-net on the collage)",
        description=(
            "Run a VidConv model on a live or recorded video. Each new frame runs only the early-net; "
            "the later-net runs on the collage of the last L early-net maps every --stride frames. "
            "No prediction before L frames unless --pad first (the first frame repeated)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help="checkpoint (.pt), ONNX early part or folder with early.onnx/later.onnx, a build-fpga folder "
        "(finn-sim) or its deploy/ bundle (pynq, on the board) (default: the bundled vic_edge checkpoint)",
    )
    p.add_argument(
        "--source",
        required=True,
        help="video file, folder of frames, webcam:N, or an rtsp:// / http(s):// URL ('sample': the bundled video)",
    )
    p.add_argument(
        "--backend",
        default=None,
        help="torch | onnxruntime | finn-sim | pynq (default: inferred from the model argument)",
    )
    p.add_argument("--stride", type=int, default=1, help="output every K frames")
    p.add_argument("--pad", default="none", help="warm-up policy: none (wait for L frames) | first (repeat frame 0)")
    p.add_argument("--jsonl", default=None, help="write one JSON line per output here")
    p.add_argument("--overlay", default=None, help="write an MP4 of every frame with label, confidence and fps")
    p.add_argument("--show", action="store_true", help="show the overlay in a window (needs a display and OpenCV)")
    p.add_argument(
        "--recompute", action="store_true", help="also run the whole model per output and report the max abs difference"
    )
    p.add_argument("--topk", type=int, default=5, help="labels per output line")
    p.add_argument("--summary-json", default=None, help="also write the summary as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run)


def _run(args) -> int:
    import json

    from vidconv_edge.io import atomic_path
    from vidconv_edge.stream import print_summary, run_stream

    source = args.source
    if source == "sample":
        from vidconv_edge.assets import sample_video

        source = sample_video()
    summary = run_stream(
        source,
        args.model,
        backend=args.backend,
        stride=args.stride,
        pad=args.pad,
        topk=args.topk,
        jsonl=args.jsonl,
        overlay=args.overlay,
        show=args.show,
        recompute=args.recompute,
        progress=not args.quiet,
    )
    print_summary(summary)
    if args.summary_json:
        with atomic_path(args.summary_json) as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
    return 130 if summary["interrupted"] else 0
