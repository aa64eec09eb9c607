"""Write the bundled sample video ``vidconv_edge/assets/sample.mp4``.

Five synthetic motions of the training set (``vidconv_edge.data.synth``), 18 frames each at
96x96 and 15 fps, one after another: 90 frames, a few tens of KB. Same seed, same video.

    python scripts/make_sample_video.py [--out PATH] [--seed N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import numpy as np

from vidconv_edge.data.synth import FPS, render_video
from vidconv_edge.io import atomic_path

MOTIONS = ("move_right", "grow", "fill", "move_up", "darken")
FRAMES_PER_MOTION = 18
SIZE = 96
OUT = Path(__file__).resolve().parents[1] / "vidconv_edge" / "assets" / "sample.mp4"


def make_sample_video(out: Path = OUT, seed: int = 7) -> Path:
    rng = np.random.default_rng(seed)
    clips = [render_video(name, FRAMES_PER_MOTION, SIZE, rng) for name in MOTIONS]
    with atomic_path(out) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "slow", "x264-params": "rc-lookahead=0:threads=1"}  # reproducible bytes
        for img in np.concatenate(clips):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode(None))
    out.chmod(0o644)  # package data: readable by every user (temp files are created 0600)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    path = make_sample_video(args.out, args.seed)
    print(f"wrote {path} ({path.stat().st_size / 1024:.1f} KB, {len(MOTIONS) * FRAMES_PER_MOTION} frames: "
          f"{', '.join(MOTIONS)})")  # fmt: skip


if __name__ == "__main__":
    main()
