"""A synthetic video dataset of real MP4 files whose classes differ only in the order of frames.

Each class pair shares one renderer: the second class of a pair is the first one played backwards
(move_left = move_right reversed, shrink = grow reversed, ...). The default ten classes are the
motions a small CNN with global pooling can tell apart; ``rotate_cw``/``rotate_ccw`` are available
on request (``--classes``) as a harder pair: their direction is not visible to translation-invariant
features without relating the motion to the object's centre. Backgrounds, object shape, colour,
texture, start position and speed are random per video, so no single frame tells the class and a
model that ignores frame order cannot beat chance within a pair.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from vidconv_edge.data.annotations import stratified_split
from vidconv_edge.errors import UserError
from vidconv_edge.io import atomic_folder
from vidconv_edge.progress import bar

# (forward class, backward class): the backward class is the forward video reversed in time
CLASS_PAIRS: tuple[tuple[str, str], ...] = (
    ("move_right", "move_left"),
    ("move_down", "move_up"),
    ("grow", "shrink"),
    ("fill", "drain"),
    ("brighten", "darken"),
    ("rotate_cw", "rotate_ccw"),
)
DEFAULT_CLASSES: tuple[str, ...] = (
    "move_left", "move_right", "move_up", "move_down", "grow", "shrink",
    "fill", "drain", "brighten", "darken",
)  # fmt: skip
KNOWN_CLASSES: tuple[str, ...] = DEFAULT_CLASSES + ("rotate_cw", "rotate_ccw")
FPS = 15
VAL_FRACTION = 0.2
_SHAPES = ("circle", "square", "diamond", "triangle", "ellipse", "cross")


@dataclass
class _Scene:
    """Everything random about one video except its motion."""

    background: np.ndarray  # (S, S, 3) float in 0..1
    shape: str
    colors: np.ndarray  # (2, 3) texture colours
    texture: str
    freq: float
    noise: float


def write_synthetic_dataset(
    out: str | os.PathLike,
    per_class: int = 20,
    frames: int = 18,
    size: int = 96,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``per_class`` MP4 videos of ``frames`` frames at ``size``x``size`` per class into ``out``.

    Layout: ``out/<class>/<class>_<i>.mp4``, ``classes.txt``, ``train.txt`` and ``val.txt``
    (MMAction2 lists ``relpath label``, stratified 80/20) and ``synth.json`` (the parameters).
    The default ``frames`` = 18 is twice vic_edge's 9-frame clip. Same arguments, same videos.
    The folder appears complete or not at all (built beside ``out``, then renamed).
    """
    out = Path(out)
    names = _check_args(per_class, frames, size, classes)
    with atomic_folder(out, overwrite) as tmp:
        codec = pick_codec()
        items: list[tuple[str, int]] = []
        jobs = [(c, i) for c in range(len(names)) for i in range(per_class)]
        for c, i in bar(jobs, desc=f"synth {out.name}", unit="video", enabled=progress):
            rel = f"{names[c]}/{names[c]}_{i:04d}.mp4"
            rng = np.random.default_rng([seed, _class_seed(names[c]), i])
            encode_mp4(tmp / rel, render_video(names[c], frames, size, rng), codec)
            items.append((rel, c))
        write_lists(tmp, names, items, seed)
        meta = dict(per_class=per_class, frames=frames, size=size, seed=seed, classes=names, fps=FPS, codec=codec)
        (tmp / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def render_video(name: str, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Frames (T, S, S, 3) uint8 of one video of class ``name``."""
    for fwd, bwd in CLASS_PAIRS:
        if name in (fwd, bwd):
            clip = _RENDERERS[fwd](_scene(size, rng), frames, size, rng)
            return clip[::-1].copy() if name == bwd else clip
    raise UserError(f"unknown synthetic class '{name}'. Known: {', '.join(KNOWN_CLASSES)}")


# -- scenes and motions ------------------------------------------------------------------------


def _scene(size: int, rng: np.random.Generator) -> _Scene:
    g = int(rng.integers(2, 6))
    coarse = rng.uniform(0.0, 1.0, size=(g, g, 3))
    bg = _upsample(coarse, size) * rng.uniform(0.2, 0.5) + rng.uniform(0.1, 0.5)  # calm, so the object stands out
    bg += rng.normal(0, rng.uniform(0.0, 0.04), size=(size, size, 1))  # fixed grain
    colors = rng.uniform(0, 1, size=(2, 3))
    colors[1] = np.clip(colors[0] + rng.choice([-1, 1], size=3) * rng.uniform(0.35, 0.6, size=3), 0, 1)
    return _Scene(
        background=np.clip(bg, 0, 1),
        shape=str(rng.choice(_SHAPES)),
        colors=colors,
        texture=str(rng.choice(("stripes", "checker"))),
        freq=float(rng.uniform(1.2, 2.5)),
        noise=float(rng.uniform(0.0, 0.02)),
    )


def _move(axis: int) -> Callable:
    def render(sc: _Scene, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
        r = rng.uniform(0.11, 0.16) * size
        dist = rng.uniform(0.40, 0.55) * size
        lo = r + 0.04 * size
        start = rng.uniform(lo, size - lo - dist)
        other = rng.uniform(lo, size - lo)
        ang = rng.uniform(0, 2 * np.pi)
        out = []
        for t in np.linspace(0, 1, frames):
            pos = [other, other]
            pos[axis] = start + dist * t
            out.append(_draw(sc, size, pos[0], pos[1], r, ang, 1.0, rng))
        return np.stack(out)

    return render


def _grow(sc: _Scene, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    r0 = rng.uniform(0.06, 0.10) * size
    r1 = r0 * rng.uniform(2.5, 3.5)
    lo = r1 + 0.04 * size
    cx, cy = rng.uniform(lo, size - lo, size=2)
    ang = rng.uniform(0, 2 * np.pi)
    return np.stack([_draw(sc, size, cx, cy, r0 + (r1 - r0) * t, ang, 1.0, rng) for t in np.linspace(0, 1, frames)])


def _rotate_cw(sc: _Scene, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    sc.shape = "pacman"  # no rotational symmetry: a symmetric shape turned far enough looks turned the other way
    r = rng.uniform(0.24, 0.32) * size
    lo = r + 0.04 * size
    cx, cy = rng.uniform(lo, size - lo, size=2)
    a0 = rng.uniform(0, 2 * np.pi)
    turn = np.deg2rad(rng.uniform(100, 160))  # over the whole video; image y points down: +angle = clockwise
    return np.stack([_draw(sc, size, cx, cy, r, a0 + turn * t, 1.0, rng) for t in np.linspace(0, 1, frames)])


def _fill(sc: _Scene, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A container (outlined box) whose textured contents rise from near empty to near full."""
    w, h = rng.uniform(0.30, 0.45) * size, rng.uniform(0.55, 0.80) * size
    x0, y0 = rng.uniform(0.04 * size, 0.96 * size - w), rng.uniform(0.04 * size, 0.96 * size - h)
    border = max(1.5, 0.025 * size)
    lo, hi = rng.uniform(0.05, 0.25), rng.uniform(0.70, 0.95)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    inside = np.clip(np.minimum.reduce([xs - x0, x0 + w - xs, ys - y0, y0 + h - ys]) + 0.5, 0, 1)  # ~1 px anti-aliased
    inner = np.clip(np.minimum.reduce([xs - x0 - border, x0 + w - border - xs, ys - y0 - border, y0 + h - border - ys]) + 0.5, 0, 1)
    u = (ys - y0) / h * 4.0  # horizontal stripes / checker of the contents
    pick = np.sin(np.pi * sc.freq * u) > 0 if sc.texture == "stripes" else np.sin(np.pi * sc.freq * u) * np.sin(np.pi * sc.freq * (xs - x0) / h * 4.0) > 0
    contents = np.where(pick[..., None], sc.colors[0], sc.colors[1])
    wall = 1.0 - sc.colors[0]  # outline contrasting with the contents
    out = []
    for t in np.linspace(0, 1, frames):
        top = y0 + h - border - (lo + (hi - lo) * t) * (h - 2 * border)
        level = np.clip(ys - top + 0.5, 0, 1) * inner
        empty = inner - level  # the empty part of the container shows the background, dimmed
        img = sc.background * (1 - inside + 0.6 * empty)[..., None] + wall * (inside - inner)[..., None] + contents * level[..., None]
        img += rng.normal(0, sc.noise, size=img.shape)
        out.append((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    return np.stack(out)


def _brighten(sc: _Scene, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    r = rng.uniform(0.10, 0.18) * size
    lo = r + 0.08 * size
    cx, cy = rng.uniform(lo, size - lo, size=2)
    ang = rng.uniform(0, 2 * np.pi)
    g0, g1 = rng.uniform(0.35, 0.6), rng.uniform(1.25, 1.6)
    return np.stack([_draw(sc, size, cx, cy, r, ang, g0 + (g1 - g0) * t, rng) for t in np.linspace(0, 1, frames)])


_RENDERERS: dict[str, Callable] = {
    "move_right": _move(0),
    "move_down": _move(1),
    "grow": _grow,
    "fill": _fill,
    "brighten": _brighten,
    "rotate_cw": _rotate_cw,
}


def _draw(sc: _Scene, size: int, cx: float, cy: float, r: float, ang: float, gain: float, rng) -> np.ndarray:
    """One frame: the textured object at centre (cx, cy), radius r, angle ang, whole frame times gain."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dx, dy = xs - cx, ys - cy
    c, s = np.cos(ang), np.sin(ang)
    u, v = (c * dx + s * dy) / r, (-s * dx + c * dy) / r  # object coordinates
    d = _shape_distance(sc.shape, u, v)
    alpha = np.clip((1.0 - d) * r + 0.5, 0.0, 1.0)[..., None]  # ~1 px anti-aliased edge
    if sc.texture == "stripes":
        pick = np.sin(np.pi * sc.freq * u) > 0
    else:
        pick = np.sin(np.pi * sc.freq * u) * np.sin(np.pi * sc.freq * v) > 0
    obj = np.where(pick[..., None], sc.colors[0], sc.colors[1])
    img = (sc.background * (1 - alpha) + obj * alpha) * gain
    img += rng.normal(0, sc.noise, size=img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _shape_distance(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """<= 1 inside the unit shape."""
    au, av_ = np.abs(u), np.abs(v)
    if shape == "circle":
        return np.hypot(u, v)
    if shape == "pacman":  # a disc with a 70-degree mouth along +u
        return np.where(np.abs(np.arctan2(v, u)) < 0.61, 2.0, np.hypot(u, v))
    if shape == "square":
        return np.maximum(au, av_) * 1.15
    if shape == "diamond":
        return (au + av_) * 0.85
    if shape == "ellipse":
        return np.hypot(u / 1.15, v / 0.6)
    if shape == "triangle":
        return 2.0 * np.maximum(np.maximum(v, 0.866 * u - 0.5 * v), -0.866 * u - 0.5 * v)
    return np.minimum(np.maximum(au, av_ / 0.38), np.maximum(au / 0.38, av_))  # cross


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of a small (g, g, 3) grid to (size, size, 3)."""
    g = grid.shape[0]
    t = np.linspace(0, g - 1, size)
    i0 = np.floor(t).astype(int).clip(0, g - 2)
    w = (t - i0)[:, None]
    rows = grid[i0] * (1 - w[..., None]) + grid[i0 + 1] * w[..., None]
    return rows[:, i0] * (1 - w[None]) + rows[:, i0 + 1] * w[None]


# -- files ---------------------------------------------------------------------------------------


def write_lists(folder: Path, names: Sequence[str], items: list[tuple[str, int]], seed: int) -> None:
    """``classes.txt``, and ``train.txt`` / ``val.txt`` (MMAction2 lists ``relpath label``, stratified 80/20)."""
    train, val = stratified_split(items, len(names), VAL_FRACTION, seed)
    (folder / "classes.txt").write_text("".join(f"{n}\n" for n in names))
    (folder / "train.txt").write_text("".join(f"{p} {y}\n" for p, y in train))
    (folder / "val.txt").write_text("".join(f"{p} {y}\n" for p, y in val))


def pick_codec() -> str:
    import av

    for name in ("libx264", "h264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - PyAV raises different types per version for a missing encoder
            continue
    raise UserError("no H.264 or MPEG-4 encoder in this PyAV/FFmpeg build")


def encode_mp4(path: Path, clip: np.ndarray, codec: str, fps: int = FPS) -> None:
    """Frames (T, H, W, 3) uint8 RGB as an MP4 (reproducible bytes with x264)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = clip.shape[2], clip.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec in ("libx264", "h264"):
            # one thread, no lookahead (x264's lookahead/mb-tree made fades encode differently run to run)
            stream.options = {"crf": "17", "preset": "veryfast", "x264-params": "rc-lookahead=0:threads=1"}
        else:
            stream.bit_rate = 40 * clip.shape[1] * clip.shape[2] * fps // 8
        for img in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _class_seed(name: str) -> int:
    return zlib.crc32(name.encode())


def _check_args(per_class: int, frames: int, size: int, classes: Sequence[str] | None) -> list[str]:
    if per_class < 1:
        raise UserError(f"per-class count must be at least 1, got {per_class}")
    if frames < 4:
        raise UserError(f"videos need at least 4 frames to show motion, got {frames}")
    if size < 32 or size % 2:
        raise UserError(f"frame size must be an even number >= 32 (yuv420p), got {size}")
    names = list(DEFAULT_CLASSES if classes is None else classes)
    unknown = [n for n in names if n not in KNOWN_CLASSES]
    if unknown:
        raise UserError(f"unknown synthetic class(es) {unknown}. Known: {', '.join(KNOWN_CLASSES)}")
    if len(names) < 2 or len(set(names)) != len(names):
        raise UserError(f"need at least 2 distinct classes, got {names}")
    return names

