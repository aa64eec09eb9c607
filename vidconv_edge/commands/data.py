"""``vidconv-edge synth``: write the synthetic video dataset."""

from __future__ import annotations

import argparse
import time

from vidconv_edge.data.camera_motion import TASKS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="write a video dataset: camera motion over real footage, or synthetic shapes",
        description="Write a dataset of MP4 clips in the class-folder layout with classes.txt, train.txt and "
        "val.txt (MMAction2 lists). --task camera-motion: a crop window moves over real footage (videos keep "
        "playing) as a camera would: static, pan_left/right, tilt_up/down, zoom_in/out. --task shapes: synthetic "
        "objects whose classes differ only in the order of frames (motion directions, growing/shrinking, "
        "filling/draining, brightening/darkening; rotating with --classes).",
    )
    p.add_argument("out", help="output folder (must be empty or missing unless --force)")
    p.add_argument("--task", choices=TASKS, default="shapes", help="what the clips show (default: shapes)")
    p.add_argument("--footage", nargs="+", metavar="PATH",
                   help="camera-motion: video / image files or folders of them, or builtin:train / builtin:val / builtin:test "
                   "(footage shipped in installed packages; default builtin:train, with --heldout builtin:test)")  # fmt: skip
    p.add_argument("--heldout", action="store_true", help="camera-motion: a test set: every clip in test.txt, no train/val split")
    p.add_argument("--per-class", type=int, default=20, metavar="N", help="videos per class (default 20)")
    p.add_argument("--frames", type=int, default=18, metavar="T", help="frames per video (default 18)")
    p.add_argument("--size", type=int, metavar="S", help="frame side in pixels, even (default 96 shapes, 128 camera-motion)")
    p.add_argument("--seed", type=int, default=0, metavar="K", help="random seed (default 0)")
    p.add_argument("--classes", default=None, help="comma-separated subset of the classes (default: all of the task)")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar / progress lines")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from vidconv_edge.errors import UserError

    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    t0 = time.perf_counter()
    if args.task == "camera-motion":
        from vidconv_edge.data.camera_motion import write_camera_motion_dataset

        size = args.size or 128
        footage = args.footage or ["builtin:test" if args.heldout else "builtin:train"]
        out = write_camera_motion_dataset(
            args.out, footage=footage, per_class=args.per_class, frames=args.frames, size=size, seed=args.seed,
            heldout=args.heldout, classes=classes, overwrite=args.force, progress=not args.quiet,
        )  # fmt: skip
    else:
        from vidconv_edge.data.synth import write_synthetic_dataset

        if args.footage or args.heldout:
            raise UserError("--footage and --heldout belong to --task camera-motion")
        size = args.size or 96
        out = write_synthetic_dataset(
            args.out, per_class=args.per_class, frames=args.frames, size=size, seed=args.seed,
            classes=classes, overwrite=args.force, progress=not args.quiet,
        )  # fmt: skip
    names = (out / "classes.txt").read_text().split()
    counts = {f.stem: len(f.read_text().splitlines()) for f in sorted(out.glob("*.txt")) if f.name != "classes.txt"}
    split = " / ".join(f"{n} {k}" for k, n in counts.items())
    print(
        f"wrote {out}: {len(names)} classes x {args.per_class} videos ({split}), "
        f"{args.frames} frames at {size}x{size}, seed {args.seed}, in {time.perf_counter() - t0:.1f} s"
    )
    return 0
