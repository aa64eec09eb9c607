"""``vidconv-edge stream``: sliding-window inference on a video file, frame folder, camera or URL."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    from vidconv_edge.stream.backends import BACKENDS  # no torch import
    from vidconv_edge.stream.engine import PAD_POLICIES

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
        action="append",
        help="video file, folder of frames, webcam:N, or an rtsp:// / http(s):// URL ('sample': the bundled video); "
        "repeat it to stream several sources on one backend / accelerator (a ring per source, fair interleaving)",
    )
    p.add_argument(
        "--backend",
        default=None,
        choices=BACKENDS,
        help="default: inferred from the model argument (a checkpoint: torch; with onnxruntime its ONNX parts are "
        "exported once into the cache)",
    )
    p.add_argument("--stride", type=int, default=1, help="output every K frames (frames the model takes)")
    p.add_argument("--frame-step", type=_frame_step, default=None, metavar="K|auto",
                   help="the model takes every K-th frame; auto (default): K = the source's frame rate / the rate "
                   "of the clips the model learnt, rounded (the bundled models: 15 fps, so 2 for a 30 fps camera; "
                   "1 when a rate is unknown); the overlay still shows every frame")  # fmt: skip
    p.add_argument("--pad", default="none", choices=PAD_POLICIES,
                   help="warm-up policy: none (wait for L frames) or first (repeat frame 0)")  # fmt: skip
    p.add_argument("--jsonl", default=None, help="write one JSON line per output here")
    p.add_argument("--overlay", default=None, help="write an MP4 of every frame with label, confidence and fps "
                   "(several sources: one file per source, F-0.mp4, F-1.mp4, ... in the order of --source)")
    p.add_argument("--show", action="store_true", help="show the overlay in a window (needs a display and OpenCV)")
    p.add_argument(
        "--recompute", action="store_true", help="also run the whole model per output and report the max abs difference"
    )
    p.add_argument("--topk", type=int, default=5, help="labels per output line")
    p.add_argument("--summary-json", default=None, help="also write the summary as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object instead of a table")
    p.set_defaults(handler=_run)


def _frame_step(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"K must be a whole number >= 1 or auto, got '{text}'") from None


def _run(args) -> int:
    from vidconv_edge.stream import print_summary, run_stream

    from vidconv_edge.errors import UserError

    sources = [_resolve(s) for s in args.source]
    if len(sources) > 1:
        from vidconv_edge.stream import run_streams
        from vidconv_edge.stream.multi import print_multi_summary

        if args.show:
            raise UserError("--show takes one source; with several, write --overlay files")
        summary = run_streams(
            sources, args.model, backend=args.backend, stride=args.stride, pad=args.pad, topk=args.topk,
            jsonl=args.jsonl, overlay=args.overlay, recompute=args.recompute, progress=not args.quiet,
            names=args.source, frame_step=args.frame_step,
        )  # fmt: skip
        if args.json:
            print(json.dumps(summary))
        else:
            print_multi_summary(summary)
        _write_summary(args.summary_json, summary)
        return 130 if summary["interrupted"] else 0
    source = sources[0]
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
        frame_step=args.frame_step,
    )
    if args.json:
        print(json.dumps(summary))
    else:
        print_summary(summary)
    _write_summary(args.summary_json, summary)
    return 130 if summary["interrupted"] else 0


def _resolve(source: str):
    """``sample`` -> the bundled sample video; anything else as given."""
    if source == "sample":
        from vidconv_edge.assets import sample_video

        return sample_video()
    return source


def _write_summary(path: str | None, summary: dict) -> None:
    from vidconv_edge.io import atomic_path

    if path:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
