"""Camera-motion clips made from real footage: a crop window moves over videos and photographs as a camera would.

Classes, as a camera operator means them: ``pan_left`` = the camera turns left, so the scene slides right across
the frame; ``tilt_up`` = the camera turns up, the scene slides down; ``zoom_in`` = the scene grows; ``static`` = the
camera does not move while the scene may (videos keep playing). Three of the four pairs differ only in the direction
of time. The window works in the coordinates of the scene: on a video whose own camera moves, it follows the scene
(``footage.track_camera``), so the synthetic move is the only camera motion in the clip.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from vidconv_edge.data.footage import Footage, FootageError, footage_files, load_footage
from vidconv_edge.data.synth import FPS, encode_mp4, pick_codec, write_lists
from vidconv_edge.errors import UserError
from vidconv_edge.io import atomic_folder
from vidconv_edge.progress import bar

CAMERA_CLASSES: tuple[str, ...] = ("static", "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out")
CAMERA_PAIRS: tuple[tuple[str, str], ...] = (("pan_left", "pan_right"), ("tilt_up", "tilt_down"), ("zoom_in", "zoom_out"))
TASKS = ("shapes", "camera-motion")
TEXTURE_SIDE, TEXTURE_STD, TEXTURED_SHARE = 64, 8.0, 0.2  # has_texture: windows whose motion is visible


@dataclass(frozen=True)
class MotionRanges:
    """The random ranges of the synthetic camera (all uniform)."""

    window: tuple[float, float] = (0.35, 0.8)  # window side / short side of the footage
    travel: tuple[float, float] = (0.15, 0.6)  # pan / tilt: distance over the clip / window side
    zoom: tuple[float, float] = (1.3, 2.2)  # zoom: window side ratio over the clip
    drift: float = 0.1  # pan / tilt: drift across the motion / travel; zoom: centre drift / window side
    shake: float = 0.004  # hand-held jitter (std, fraction of the window side), on a share of the clips
    shake_share: float = 0.3
    ease_share: float = 0.3  # share of clips that accelerate and decelerate (smoothstep) instead of a constant speed
    movers_share: float = 0.35  # share of clips with 1-3 independently moving patches (object motion)
    blur_share: float = 0.5  # share of moving clips with motion blur along the motion
    video_share: float = 0.6  # share of clips drawn from videos when the footage has any


def reverse_pair(name: str) -> str:
    """The class a clip of ``name`` becomes when played backwards (``static`` stays)."""
    for a, b in CAMERA_PAIRS:
        if name == a:
            return b
        if name == b:
            return a
    return name


# -- the camera path ---------------------------------------------------------------------------


@dataclass
class Path2D:
    """Window centres (T, 2) and sides (T,) in the scene coordinates of the footage's segment."""

    centre: np.ndarray
    side: np.ndarray


def camera_path(name: str, frames: int, height: int, width: int, min_side: float, rng: np.random.Generator,
                r: MotionRanges = MotionRanges()) -> Path2D | None:  # fmt: skip
    """A random window path of class ``name`` inside a ``height`` x ``width`` scene, or None if it cannot fit."""
    short = min(height, width)
    s = _progress_curve(frames, rng, r.ease_share)
    w = rng.uniform(*r.window) * short
    if name == "static":
        w = max(w, min_side)
        if w > short:
            return None
        c = np.array([rng.uniform(w / 2, width - w / 2), rng.uniform(w / 2, height - w / 2)])
        return _shaken(Path2D(np.tile(c, (frames, 1)), np.full(frames, w)), rng, r)
    if name.startswith(("pan_", "tilt_")):
        axis = 0 if name.startswith("pan_") else 1
        extent = (width, height)[axis]
        w = min(w, extent / (1 + r.travel[0]), short)  # leave room for the shortest travel
        if w < min_side:
            return None
        travel = min(rng.uniform(*r.travel) * w, extent - w)
        drift = rng.uniform(-r.drift, r.drift) * travel
        sign = -1.0 if name in ("pan_left", "tilt_up") else 1.0  # the window moves the way the camera turns
        lo = np.array([w / 2, w / 2])
        hi = np.array([width - w / 2, height - w / 2])
        delta = np.zeros(2)
        delta[axis], delta[1 - axis] = sign * travel, drift
        start = rng.uniform(lo + np.maximum(-delta, 0), np.maximum(hi - np.maximum(delta, 0), lo + np.maximum(-delta, 0)))
        centre = start[None] + s[:, None] * delta[None]
        return _shaken(Path2D(np.clip(centre, lo, hi), np.full(frames, w)), rng, r)
    if name in ("zoom_in", "zoom_out"):
        z = rng.uniform(*r.zoom)
        big = min(max(w * np.sqrt(z), min_side * z), short)
        small = big / z
        if small < min_side:
            return None
        sides = big * z ** (-s) if name == "zoom_in" else small * z**s  # constant speed in log scale
        target = np.array([rng.uniform(big / 2, width - big / 2), rng.uniform(big / 2, height - big / 2)])
        drift = rng.uniform(-r.drift, r.drift, size=2) * small
        centre = target[None] + s[:, None] * drift[None]
        half = sides[:, None] / 2
        centre = np.clip(centre, half, np.array([width, height])[None] - half)
        return _shaken(Path2D(centre, sides), rng, r)
    raise UserError(f"unknown camera-motion class '{name}'. Known: {', '.join(CAMERA_CLASSES)}")


def _progress_curve(frames: int, rng: np.random.Generator, ease_share: float) -> np.ndarray:
    t = np.linspace(0.0, 1.0, frames)
    return t * t * (3 - 2 * t) if rng.uniform() < ease_share else t


def _shaken(path: Path2D, rng: np.random.Generator, r: MotionRanges) -> Path2D:
    if rng.uniform() < r.shake_share:
        jitter = rng.normal(0, r.shake, size=path.centre.shape) * path.side[:, None]
        path.centre = path.centre + jitter - jitter.mean(axis=0)
    return path


# -- rendering ---------------------------------------------------------------------------------


def render_window(image: np.ndarray, scene_to_frame: np.ndarray, centre: np.ndarray, side: float, size: int) -> np.ndarray:
    """The square window (``centre``, ``side``, scene coordinates) of ``image`` as a ``size`` x ``size`` RGB crop.

    ``scene_to_frame`` (2x3) maps scene coordinates to the image's; the image is area-averaged first when the
    window is larger than the output, so a moving window does not alias."""
    import cv2

    a = np.vstack([scene_to_frame, [0, 0, 1]])
    step = side / size
    out_to_scene = np.array([[step, 0, centre[0] - side / 2 + step / 2 - 0.5], [0, step, centre[1] - side / 2 + step / 2 - 0.5], [0, 0, 1]])
    m = a @ out_to_scene  # output pixel -> image pixel
    shrink = float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))
    if shrink > 1.05:  # antialias: area-resize the image so the warp below is close to 1:1
        k = 1.0 / shrink
        h, w = image.shape[:2]
        image = cv2.resize(image, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
        kx, ky = image.shape[1] / w, image.shape[0] / h
        m = np.array([[kx, 0, 0.5 * kx - 0.5], [0, ky, 0.5 * ky - 0.5], [0, 0, 1]]) @ m
    return cv2.warpAffine(image, m[:2], (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT101)


def has_texture(window: np.ndarray) -> bool:
    """True if the camera's motion is visible in ``window`` (RGB, :data:`TEXTURE_SIDE` square): at least
    :data:`TEXTURED_SHARE` of its 8x8 blocks vary by more than :data:`TEXTURE_STD` grey levels. A window of sky,
    a plain wall or a dark background looks the same panned or not: its label would be a guess."""
    gray = window.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    blocks = gray.reshape(TEXTURE_SIDE // 8, 8, TEXTURE_SIDE // 8, 8).std(axis=(1, 3))
    return float((blocks > TEXTURE_STD).mean()) >= TEXTURED_SHARE


def has_textured_windows(footage: Footage, size: int) -> bool:
    """True if any of a 3 x 3 grid of half-short-side windows (at least ``size`` / 2 px) of the first, middle or
    last frame has texture (:func:`has_texture`). Footage without one (a blank wall, fog, a lens cap) would only
    ever give windows too flat to show the motion."""
    import cv2

    frames, (h, w) = footage.frames, footage.frames.shape[1:3]
    side = min(max(size // 2, min(h, w) // 2), h, w)
    for t in sorted({0, len(frames) // 2, len(frames) - 1}):
        for y in np.linspace(0, h - side, 3).astype(int):
            for x in np.linspace(0, w - side, 3).astype(int):
                window = cv2.resize(frames[t, y : y + side, x : x + side], (TEXTURE_SIDE, TEXTURE_SIDE), interpolation=cv2.INTER_AREA)
                if has_texture(window):
                    return True
    return False


def _inside(path: Path2D, transforms: np.ndarray, height: int, width: int) -> bool:
    """Every window corner of every frame lies inside the frame it is cut from."""
    corners = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], dtype=np.float64) / 2
    for c, w, t in zip(path.centre, path.side, transforms):
        pts = c[None] + corners * w
        img = pts @ t[:, :2].T + t[:, 2]
        if img.min() < -0.5 or img[:, 0].max() > width - 0.5 or img[:, 1].max() > height - 0.5:
            return False
    return True


@dataclass
class ClipRecord:
    """Where a clip comes from (one line of ``clips.jsonl``)."""

    path: str
    label: str
    footage: str
    frames: list[int]  # source frame of each output frame
    centre: list[list[float]]
    side: list[float]
    movers: int
    blur: bool


def render_clip(name: str, footage: Footage, frames: int, size: int, rng: np.random.Generator, others: Sequence[Footage] = (),
                r: MotionRanges = MotionRanges(), tries: int = 40) -> tuple[np.ndarray, ClipRecord] | None:  # fmt: skip
    """One clip (T, size, size, 3) of class ``name`` from ``footage``, or None if it cannot hold one (no room for the
    motion, or no window with texture enough to show it)."""
    h, w = footage.frames.shape[1:3]
    min_side = size / 2  # at most 2x upscaling
    for attempt in range(tries):
        path = camera_path(name, frames, h, w, min_side, rng, r)
        if path is None:
            return None
        idx, transforms = _source_frames(footage, frames, rng, still=attempt >= tries // 2)
        if _inside(path, transforms, h, w) and all(
            has_texture(render_window(footage.frames[idx[t]], transforms[t], path.centre[t], path.side[t], TEXTURE_SIDE))
            for t in (0, frames - 1)
        ):
            break
    else:
        return None
    clip = np.stack([render_window(footage.frames[i], t, c, s, size) for i, t, c, s in zip(idx, transforms, path.centre, path.side)])
    movers = int(rng.integers(1, 4)) if rng.uniform() < r.movers_share else 0
    if movers:
        clip = _add_movers(clip, movers, [footage, *others], rng)
    blur = name != "static" and rng.uniform() < r.blur_share
    if blur:
        clip = _motion_blur(clip, path, size, rng)
    clip = _photometric(clip, rng)
    record = ClipRecord("", name, footage.name, [int(i) for i in idx], np.round(path.centre, 2).tolist(), np.round(path.side, 2).tolist(), movers, blur)
    return clip, record


def _source_frames(footage: Footage, frames: int, rng: np.random.Generator, still: bool) -> tuple[np.ndarray, np.ndarray]:
    """Source frame indices of a clip and their scene -> frame transforms. Videos keep playing (every 1st or 2nd
    source frame) inside one segment; a photograph, or ``still``, repeats one frame."""
    eye = np.tile(np.eye(3)[:2], (frames, 1, 1))
    if not footage.is_video or still:
        i = int(rng.integers(len(footage.frames)))
        return np.full(frames, i), eye
    long_enough = [(a, b) for a, b in footage.shots if b - a >= frames]
    if not long_enough:
        i = int(rng.integers(len(footage.frames)))
        return np.full(frames, i), eye
    a, b = long_enough[int(rng.integers(len(long_enough)))]
    step = int(rng.integers(1, 3)) if b - a >= 2 * frames - 1 else 1
    start = int(rng.integers(a, b - step * (frames - 1)))
    idx = start + step * np.arange(frames)
    t = footage.motion[idx]
    first = np.linalg.inv(np.vstack([t[0], [0, 0, 1]]))  # scene coordinates = those of the clip's first frame
    return idx, np.stack([(np.vstack([m, [0, 0, 1]]) @ first)[:2] for m in t])


def _add_movers(clip: np.ndarray, count: int, sources: Sequence[Footage], rng: np.random.Generator) -> np.ndarray:
    """Paste ``count`` soft-edged patches cut from footage, each moving on its own straight path (object motion)."""
    import cv2

    clip = clip.astype(np.float32)
    t_len, size = clip.shape[0], clip.shape[1]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for _ in range(count):
        src = sources[int(rng.integers(len(sources)))]
        img = src.frames[int(rng.integers(len(src.frames)))]
        side = int(rng.uniform(0.12, 0.3) * size)
        crop = int(rng.uniform(0.2, 0.6) * min(img.shape[:2]))
        y0, x0 = int(rng.integers(0, img.shape[0] - crop + 1)), int(rng.integers(0, img.shape[1] - crop + 1))
        patch = cv2.resize(img[y0 : y0 + crop, x0 : x0 + crop], (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
        start = rng.uniform(0, size, size=2)
        vel = rng.normal(0, 1, size=2)
        vel *= rng.uniform(0.15, 0.7) * size / max(np.linalg.norm(vel), 1e-6)
        aspect = rng.uniform(0.6, 1.6)
        for t in range(t_len):
            cx, cy = start + vel * (t / max(t_len - 1, 1) - 0.5)
            u, v = (xx - cx) / (side / 2 * aspect), (yy - cy) / (side / 2 / aspect)
            alpha = np.clip((1.0 - np.sqrt(u * u + v * v)) * side / 4, 0, 1)[..., None]
            px = np.clip(np.floor(xx - cx + side / 2), 0, side - 1).astype(int)
            py = np.clip(np.floor(yy - cy + side / 2), 0, side - 1).astype(int)
            clip[t] = clip[t] * (1 - alpha) + patch[py, px] * alpha
    return np.clip(clip + 0.5, 0, 255).astype(np.uint8)


def _motion_blur(clip: np.ndarray, path: Path2D, size: int, rng: np.random.Generator) -> np.ndarray:
    """Blur each frame along the window's motion (output pixels per frame times a random exposure)."""
    import cv2

    exposure = rng.uniform(0.3, 1.0)
    velocity = np.gradient(path.centre, axis=0) * (size / path.side)[:, None]
    out = clip.copy()
    for t, (vx, vy) in enumerate(velocity):
        length = float(np.hypot(vx, vy) * exposure)
        if length < 1.5:
            continue
        k = int(np.ceil(length)) | 1
        kernel = np.zeros((k, k), np.float32)
        c = k // 2
        ux, uy = vx / np.hypot(vx, vy), vy / np.hypot(vx, vy)
        for s in np.linspace(-length / 2, length / 2, 4 * k):
            kernel[int(round(c + s * uy)) % k, int(round(c + s * ux)) % k] = 1.0
        out[t] = cv2.filter2D(clip[t], -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT101)
    return out


def _photometric(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per clip contrast / brightness / colour balance, per frame sensor noise."""
    gain = rng.uniform(0.8, 1.2) * rng.uniform(0.92, 1.08, size=3)
    bias = rng.uniform(-20, 20)
    noise = rng.uniform(0.0, 3.0)
    out = clip.astype(np.float32) * gain + bias
    out += rng.normal(0, noise, size=out.shape).astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# -- the dataset -------------------------------------------------------------------------------


def load_usable_footage(specs: Sequence[str | os.PathLike], size: int, progress: bool = True) -> list[Footage]:
    """Decode the footage of ``specs``; footage that cannot be decoded, is smaller than the crop window (its
    short side under ``size`` / 2) or has no window with texture is named and skipped. UserError (exit 2) when
    nothing usable remains."""
    import sys

    files = footage_files(specs)
    usable: list[Footage] = []
    for file in bar(files, desc="footage", unit="file", enabled=progress):
        try:
            f = load_footage(file)
        except FootageError as e:
            print(f"warning: skipped footage {e.path}: {e.reason}", file=sys.stderr)
            continue
        if f.short_side < size / 2:
            print(f"warning: skipped footage {file}: {f.frames.shape[2]}x{f.frames.shape[1]} is smaller than the "
                  f"smallest crop window ({size // 2} px for {size} px clips)", file=sys.stderr)  # fmt: skip
            continue
        if not has_textured_windows(f, size):
            print(f"warning: skipped footage {file}: too flat to show the motion (no window with texture)", file=sys.stderr)
            continue
        usable.append(f)
    if not usable:
        given = ", ".join(map(str, specs)) or "(none)"
        raise UserError(f"no usable footage in {given}: give video or image files (or folders of them) at least "
                        f"{size // 2} px on the short side, with texture (not too flat to show the motion)")  # fmt: skip
    return usable


def write_camera_motion_dataset(
    out: str | os.PathLike,
    footage: Sequence[str | os.PathLike] = ("builtin:train",),
    per_class: int = 20,
    frames: int = 18,
    size: int = 128,
    seed: int = 0,
    heldout: bool = False,
    classes: Sequence[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    ranges: MotionRanges = MotionRanges(),
) -> Path:
    """Write ``per_class`` camera-motion clips of ``frames`` frames at ``size`` x ``size`` per class into ``out``.

    Layout as ``synth``: ``out/<class>/<class>_<i>.mp4``, ``classes.txt``, ``train.txt`` / ``val.txt`` (stratified
    80/20), or with ``heldout`` one ``test.txt`` of every clip; ``clips.jsonl`` (where each clip comes from) and
    ``synth.json`` (the parameters, the footage used and skipped). Same arguments and footage, same clips.
    """
    out = Path(out)
    names = list(CAMERA_CLASSES if classes is None else classes)
    unknown = [n for n in names if n not in CAMERA_CLASSES]
    if unknown or len(set(names)) != len(names) or len(names) < 2:
        raise UserError(f"camera-motion classes must be 2 or more distinct names of {', '.join(CAMERA_CLASSES)}; got {names}")
    if per_class < 1 or frames < 4 or size < 32 or size % 2:
        raise UserError(f"need per-class >= 1, frames >= 4 and an even size >= 32; got {per_class}, {frames}, {size}")
    sources = load_usable_footage(footage, size, progress)
    videos = [f for f in sources if f.is_video]
    with atomic_folder(out, overwrite) as tmp:
        codec = pick_codec()
        items: list[tuple[str, int]] = []
        records = []
        jobs = [(c, i) for c in range(len(names)) for i in range(per_class)]
        for c, i in bar(jobs, desc=f"synth {out.name}", unit="video", enabled=progress):
            rng = np.random.default_rng([seed, c, i, 7])
            made = None
            for _ in range(20):
                pool = videos if videos and rng.uniform() < ranges.video_share else sources
                made = render_clip(names[c], pool[int(rng.integers(len(pool)))], frames, size, rng, sources, ranges)
                if made is not None:
                    break
            if made is None:
                raise UserError(f"no footage can hold a '{names[c]}' clip of {size} px: too small (crop window >= "
                                f"{size // 2} px) or too flat to show the motion (sky, plain walls)")  # fmt: skip
            clip, record = made
            record.path = f"{names[c]}/{names[c]}_{i:04d}.mp4"
            encode_mp4(tmp / record.path, clip, codec)
            items.append((record.path, c))
            records.append(asdict(record))
        if heldout:
            (tmp / "classes.txt").write_text("".join(f"{n}\n" for n in names))
            (tmp / "test.txt").write_text("".join(f"{p} {y}\n" for p, y in items))
        else:
            write_lists(tmp, names, items, seed)
        (tmp / "clips.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        meta = dict(task="camera-motion", per_class=per_class, frames=frames, size=size, seed=seed, heldout=heldout,
                    classes=names, fps=FPS, codec=codec, footage=[f.name for f in sources], ranges=asdict(ranges))  # fmt: skip
        (tmp / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out
