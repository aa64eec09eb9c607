"""Frame-accurate reading of video files (PyAV) and pre-extracted frame folders, by frame index."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from vidconv_edge.errors import UserError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
FOLDER_FPS = 30.0  # frame folders carry no rate; MMAction2's rawframe datasets assume 30 fps


class VideoReadError(UserError):
    """A video file or frame folder that cannot be read (missing, corrupt, truncated)."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read video {self.path}: {reason}")


class VideoInfo(NamedTuple):
    num_frames: int
    fps: float
    width: int
    height: int


def is_video_source(path: Path) -> bool:
    """A video file (by extension) or a folder holding image frames."""
    if path.is_dir():
        return any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir())
    return path.suffix.lower() in VIDEO_EXTENSIONS


def video_info(path: str | os.PathLike) -> VideoInfo:
    """(num_frames, fps, width, height); cached per file version (path, size, mtime)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        raise VideoReadError(path, e.strerror or "not found") from e
    return _video_info_cached(str(path), st.st_size, st.st_mtime_ns)


def read_frames(path: str | os.PathLike, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """Frames at ``indices`` (any order, repeats allowed) as uint8 RGB (N, H, W, 3).

    Frame ``i`` is the ``i``-th decoded frame of the first video stream, counted from 0.
    Indices past a stream that ends earlier than its header promised repeat the last frame.
    """
    path = Path(path)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise ValueError("read_frames needs at least one index")
    if idx.min() < 0:
        raise ValueError(f"negative frame index {int(idx.min())}")
    if path.is_dir():
        return _read_folder(path, idx)
    if not path.exists():
        raise VideoReadError(path, "not found")
    return _read_video(path, idx)


# -- video files -------------------------------------------------------------------------------


def _open(path: Path):
    import av

    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise VideoReadError(path, str(e)) from e
    if not container.streams.video:
        container.close()
        raise VideoReadError(path, "no video stream")
    return container


@functools.lru_cache(maxsize=4096)
def _video_info_cached(path_str: str, size: int, mtime_ns: int) -> VideoInfo:
    import av

    path = Path(path_str)
    if path.is_dir():
        files = _folder_frames(path)
        w, h = _image_size(files[0])
        return VideoInfo(len(files), FOLDER_FPS, w, h)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0) or FOLDER_FPS
        width, height = stream.codec_context.width, stream.codec_context.height
        count = stream.frames
        if count <= 0:  # no frame count in the header (webm, some avi): count packets
            count = sum(1 for pkt in container.demux(stream) if pkt.size > 0)
    except av.error.FFmpegError as e:
        raise VideoReadError(path, str(e)) from e
    finally:
        container.close()
    if count <= 0 or width <= 0 or height <= 0:
        raise VideoReadError(path, "no decodable frames")
    return VideoInfo(int(count), fps, int(width), int(height))


def _read_video(path: Path, idx: np.ndarray) -> np.ndarray:
    import av

    want_set = set(np.unique(idx).tolist())
    last = int(idx.max())
    got: dict[int, np.ndarray] = {}
    tail = None  # the last decoded frame, for indices past a stream that ends early
    container = _open(path)
    try:
        stream = container.streams.video[0]
        for pos, frame in enumerate(container.decode(stream)):
            if pos in want_set:
                got[pos] = frame.to_ndarray(format="rgb24")
            tail = frame
            if pos >= last:
                break
        if len(got) < len(want_set):
            if tail is None:
                raise VideoReadError(path, "no frame could be decoded")
            end = tail.to_ndarray(format="rgb24")
            got.update({i: end for i in want_set - got.keys()})
    except av.error.FFmpegError as e:
        raise VideoReadError(path, str(e)) from e
    finally:
        container.close()
    return np.stack([got[i] for i in idx.tolist()])


# -- frame folders -----------------------------------------------------------------------------

_DIGITS = re.compile(r"(\d+)")


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t for t in _DIGITS.split(p.name)]


def _folder_frames(path: Path) -> list[Path]:
    files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key)
    if not files:
        raise VideoReadError(path, "frame folder holds no images")
    return files


def _image_size(file: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as e:
        raise VideoReadError(file, str(e)) from e


def _read_folder(path: Path, idx: np.ndarray) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    files = _folder_frames(path)
    out: dict[int, np.ndarray] = {}
    for i in np.unique(idx).tolist():
        file = files[min(i, len(files) - 1)]
        try:
            with Image.open(file) as im:
                out[i] = np.asarray(im.convert("RGB"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as e:
            raise VideoReadError(file, str(e)) from e
    shapes = {a.shape for a in out.values()}
    if len(shapes) > 1:
        raise VideoReadError(path, f"frames of different sizes {sorted(shapes)}")
    return np.stack([out[i] for i in idx.tolist()])
