"""Frame-accurate reading of video files (PyAV) and pre-extracted frame folders, by frame index."""

from __future__ import annotations

import bisect
import functools
import os
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from vidconv_edge.errors import UserError
from vidconv_edge.naming import natural_key
from vidconv_edge.pictures import frame_rgb, rgb_image

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".gif")
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
    width: int  # of the stored frames (a video with a display rotation is read turned: ``pictures.upright``)
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


def typical_frame_rate(paths: Sequence[str | os.PathLike], samples: int = 16) -> float | None:
    """The median frame rate of up to ``samples`` videos spread over ``paths`` (frame folders and files that
    cannot be read carry no rate); None if none has one."""
    picked = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, min(samples, len(paths)))] if paths else []
    rates = []
    for path in picked:
        if Path(path).is_dir():
            continue
        try:
            rates.append(video_info(path).fps)
        except VideoReadError:
            continue
    return float(np.median(rates)) if rates else None


def read_frames(
    path: str | os.PathLike, indices: Sequence[int] | np.ndarray, size: tuple[int, int] | None = None, seek: bool = True
) -> np.ndarray:
    """Frames at ``indices`` (any order, repeats allowed) as uint8 RGB (N, H, W, 3), upright (``pictures.upright``).

    Frame ``i`` is the ``i``-th decoded frame of the first video stream, counted from 0.
    Indices past a stream that ends earlier than its header promised repeat the last frame.
    ``size``: (width, height) to convert the stored frames to while decoding (for callers that resize anyway; not
    the same pixels as resizing the full frames; a rotated video's frames are turned afterwards). ``seek``: jump to
    the keyframe before a wanted frame when the frames up to it need not be decoded (the same frames as decoding
    everything, fewer decoded).
    """
    path = Path(path)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise ValueError("read_frames needs at least one index")
    if idx.min() < 0:
        raise ValueError(f"negative frame index {int(idx.min())}")
    if path.is_dir():
        frames = _read_folder(path, idx)
        return frames if size is None else _resize_rgb(frames, size)
    if not path.exists():
        raise VideoReadError(path, "not found")
    return _read_video(path, idx, size, seek)


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


SEEK_MIN_GAP = 8  # frames: a seek (decoder flush and restart) costs about as much as decoding this many
INDEX_CACHE_SIZE = 256  # frame indexes kept per process (a few KB each)


class _Index(NamedTuple):
    """Presentation timestamps of a stream's frames in order (frame i has ``pts[i]``) and its keyframe indices."""

    pts: list[int]
    keyframes: list[int]


class _SeekMiss(Exception):
    """Decoding after a seek did not meet the frames the index promised: read sequentially instead."""


_INDEXES: dict[tuple[str, int, int], _Index | None] = {}


def _read_video(path: Path, idx: np.ndarray, size: tuple[int, int] | None, seek: bool) -> np.ndarray:
    import av

    want = sorted(set(idx.tolist()))
    got = None
    container = _open(path)
    try:
        stream = _threaded(container)
        index = _frame_index(path, container, stream) if seek and _worth_seeking(stream, want) else None
        if index is not None:
            try:
                got = _decode_seeking(container, stream, want, index, size)
            except _SeekMiss:
                container.close()
                container = _open(path)
                stream = _threaded(container)
        if got is None:
            got = _decode_sequential(path, container, stream, want, size)
    except av.error.FFmpegError as e:
        raise VideoReadError(path, str(e)) from e
    finally:
        container.close()
    return np.stack([got[i] for i in idx.tolist()])


def _decode_sequential(path: Path, container, stream, want: list[int], size: tuple[int, int] | None) -> dict[int, np.ndarray]:
    """Decode from the first frame up to the last wanted one."""
    want_set, last = set(want), want[-1]
    got: dict[int, np.ndarray] = {}
    tail = None  # the last decoded frame, for indices past a stream that ends early
    for pos, frame in enumerate(container.decode(stream)):
        if pos in want_set:
            got[pos] = frame_rgb(frame, size)
        tail = frame
        if pos >= last:
            break
    if len(got) < len(want_set):
        if tail is None:
            raise VideoReadError(path, "no frame could be decoded")
        end = frame_rgb(tail, size)
        got.update({i: end for i in want_set - got.keys()})
    return got


def _decode_seeking(container, stream, want: list[int], index: _Index, size: tuple[int, int] | None) -> dict[int, np.ndarray]:
    """Decode the wanted frames in order, seeking to the keyframe before one when that skips enough frames."""
    last = len(index.pts) - 1
    rank = {pts: i for i, pts in enumerate(index.pts)}
    decoded: dict[int, np.ndarray] = {}
    frames, pos = container.decode(stream), 0  # the decoder's output and the index of its next frame
    for target in sorted({min(w, last) for w in want}):  # past the end: the last frame
        key = index.keyframes[bisect.bisect_right(index.keyframes, target) - 1]
        if key - pos >= SEEK_MIN_GAP:
            container.seek(index.pts[key], stream=stream, backward=True, any_frame=False)
            frames, pos = container.decode(stream), None
        while pos is None or pos <= target:
            frame = next(frames, None)
            i = rank.get(frame.pts) if frame is not None else None
            if i is None or (pos is None and i > target) or (pos is not None and i != pos):
                raise _SeekMiss  # the stream ended early, a pts not in the index, or the seek went past
            pos = i + 1
            if i == target:
                decoded[i] = frame_rgb(frame, size)
    return {w: decoded[min(w, last)] for w in want}


def _worth_seeking(stream, want: list[int]) -> bool:
    """Whether a keyframe lies far enough ahead of the decoding for a seek to pay, by the container's own index
    (no demuxing: a long-GOP file reads on without building the frame index); True without a full index."""
    entries = stream.index_entries
    if len(entries) == 0 or len(entries) != stream.frames:
        return True
    keys = [i for i, entry in enumerate(entries) if entry.is_keyframe]  # decode order: ~ the frame index
    pos = 0
    for target in want:
        key = keys[bisect.bisect_right(keys, target) - 1] if keys and keys[0] <= target else 0
        if key - pos >= SEEK_MIN_GAP:
            return True
        pos = target + 1
    return False


def _frame_index(path: Path, container, stream) -> _Index | None:
    """The frame index of the file (cached per file version; built by demuxing ``container``, then rewound),
    or None where frames cannot be located by their pts."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _INDEXES:
        if len(_INDEXES) >= INDEX_CACHE_SIZE:
            del _INDEXES[next(iter(_INDEXES))]
        packets = [(pkt.pts, pkt.is_keyframe) for pkt in container.demux(stream) if pkt.size > 0]
        container.seek(0)
        _INDEXES[key] = _index_of(packets)
    return _INDEXES[key]


def _index_of(packets: list[tuple[int | None, bool]]) -> _Index | None:
    pts = sorted(p for p, _ in packets if p is not None)
    if not packets or len(pts) < len(packets) or len(set(pts)) < len(pts):
        return None
    rank = {p: i for i, p in enumerate(pts)}
    keyframes = sorted(rank[p] for p, key in packets if key)
    if not keyframes or keyframes[0] != 0:
        return None
    return _Index(pts, keyframes)


def _threaded(container):
    """The first video stream, decoded with FFmpeg's threads (frame and slice threading)."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _resize_rgb(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames])


# -- frame folders -----------------------------------------------------------------------------


def _folder_frames(path: Path) -> list[Path]:
    files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=natural_key)
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
                out[i] = rgb_image(im)
        except (UnidentifiedImageError, OSError) as e:
            raise VideoReadError(file, str(e)) from e
    shapes = {a.shape for a in out.values()}
    if len(shapes) > 1:
        raise VideoReadError(path, f"frames of different sizes {sorted(shapes)}")
    return np.stack([out[i] for i in idx.tolist()])
