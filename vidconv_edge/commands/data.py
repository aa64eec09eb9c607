"""``vidconv-edge synth``: write the synthetic video dataset."""

from __future__ import annotations

import argparse
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="write a synthetic video dataset (real MP4s; classes differ only in frame order)",
        description="Write a synthetic dataset of MP4 videos in the class-folder layout with classes.txt, "
        "train.txt and val.txt (MMAction2 lists). Classes differ only in the order of frames "
        "(motion directions, growing/shrinking, filling/draining, brightening/darkening; rotating with --classes).",
    )
    p.add_argument("out", help="output folder (must be empty or missing unless --force)")
    p.add_argument("--per-class", type=int, default=20, metavar="N", help="videos per class (default 20)")
    p.add_argument("--frames", type=int, default=18, metavar="T", help="frames per video (default 18)")
    p.add_argument("--size", type=int, default=96, metavar="S", help="frame side in pixels, even (default 96)")
    p.add_argument("--seed", type=int, default=0, metavar="K", help="random seed (default 0)")
    p.add_argument("--classes", default=None, help="comma-separated subset of the classes (default: all 10)")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from vidconv_edge.data.synth import write_synthetic_dataset

    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    t0 = time.perf_counter()
    out = write_synthetic_dataset(
        args.out, per_class=args.per_class, frames=args.frames, size=args.size, seed=args.seed,
        classes=classes, overwrite=args.force,
    )  # fmt: skip
    names = (out / "classes.txt").read_text().split()
    n_train = len((out / "train.txt").read_text().splitlines())
    n_val = len((out / "val.txt").read_text().splitlines())
    print(
        f"wrote {out}: {len(names)} classes x {args.per_class} videos ({n_train} train / {n_val} val), "
        f"{args.frames} frames at {args.size}x{args.size}, seed {args.seed}, in {time.perf_counter() - t0:.1f} s"
    )
    return 0
