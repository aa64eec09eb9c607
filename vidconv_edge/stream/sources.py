"""Frame sources: a video file, a folder of frames, a camera (``webcam:N``), an RTSP/HTTP URL.

:func:`open_source` parses a source string and opens it (an unreachable source is a
``UserError``). :class:`FrameReader` decodes in its own thread into a bounded queue: files are
read losslessly (the decoder waits for inference), live sources keep only the newest frame and
count the frames they drop. A corrupt frame is skipped with a warning.
"""

from __future__ import annotations

import abc
import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from vidconv_edge.errors import UserError
from vidconv_edge.naming import natural_key
from vidconv_edge.pictures import frame_rgb, rgb_image
from vidconv_edge.stream.stats import LatencyStats

log = logging.getLogger("vidconv_edge.stream")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
FOLDER_FPS = 25.0  # timestamps of a folder of frames


@dataclass
class Frame:
    """One decoded frame: its index in the source, its time in seconds and the RGB image."""

    index: int
    time: float
    image: np.ndarray  # (H, W, 3) uint8 RGB


class Source(abc.ABC):
    """A stream of RGB frames. ``open()`` raises UserError when the source cannot be reached."""

    name: str = "source"
    live: bool = False  # live sources drop frames when inference falls behind
    fps: float | None = None
    total: int | None = None  # frame count when known
    corrupt: int = 0  # frames skipped because they could not be decoded

    def open(self) -> None:
        """Connect / open; raise UserError if the source is unreachable."""

    @abc.abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Yield frames in order until the source ends."""

    def close(self) -> None:
        """Release the file, camera or connection."""

    def _skip(self, what: str, err: BaseException) -> None:
        self.corrupt += 1
        log.warning("%s: skipping a corrupt frame (%s): %s", self.name, what, err)


class VideoSource(Source):
    """A video file, or a network stream (RTSP/HTTP/...) when ``live``, decoded with PyAV."""

    def __init__(self, url: str, live: bool = False, timeout_s: float = 10.0):
        self.name, self.live, self.timeout_s = url, live, timeout_s
        self._container = None

    def open(self) -> None:
        try:
            import av
        except ImportError as e:
            raise UserError(
                f"decoding {self.name} needs PyAV (pip install av); without it, pass a folder of frames or webcam:N"
            ) from e
        if not self.live and not Path(self.name).is_file():
            raise UserError(f"video source not found: {self.name}")
        options = {"rtsp_transport": "tcp"} if self.name.startswith("rtsp") else {}
        try:
            self._container = av.open(self.name, options=options, timeout=(self.timeout_s, self.timeout_s))
        except (av.error.FFmpegError, OSError) as e:
            raise UserError(f"cannot open video source {self.name}: {e}") from e
        if not self._container.streams.video:
            self.close()
            raise UserError(f"{self.name} has no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self.fps = float(stream.average_rate) if stream.average_rate else None
        self.total = (stream.frames or None) if not self.live else None

    def frames(self) -> Iterator[Frame]:
        import av

        stream = self._container.streams.video[0]
        index = 0
        packets = self._container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError as e:  # a broken connection or a truncated file: the source ends
                log.warning("%s: stream ended early: %s", self.name, e)
                return
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as e:
                self._skip(f"packet after frame {index}", e)
                continue
            for f in decoded:
                try:
                    image = frame_rgb(f)
                except (av.error.FFmpegError, ValueError) as e:
                    self._skip(f"frame {index}", e)
                    continue
                t = float(f.time) if f.time is not None else index / (self.fps or FOLDER_FPS)
                yield Frame(index, t, image)
                index += 1

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class FolderSource(Source):
    """A folder of image files, read in natural order (frame2 before frame10) at ``fps``."""

    def __init__(self, folder: str | os.PathLike, fps: float = FOLDER_FPS):
        self.folder, self.fps, self.name = Path(folder), fps, str(folder)
        self.files: list[Path] = []

    def open(self) -> None:
        if not self.folder.is_dir():
            raise UserError(f"frame folder not found: {self.folder}")
        self.files = sorted((p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
        if not self.files:
            raise UserError(f"{self.folder} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.total = len(self.files)

    def frames(self) -> Iterator[Frame]:
        from PIL import Image

        for i, path in enumerate(self.files):
            try:
                with Image.open(path) as img:
                    image = rgb_image(img)
            except (OSError, SyntaxError, ValueError) as e:
                self._skip(path.name, e)
                continue
            yield Frame(i, i / self.fps, image)


class WebcamSource(Source):
    """Camera ``N`` through OpenCV (imported only for cameras)."""

    live = True

    def __init__(self, device: int):
        self.device, self.name = device, f"webcam:{device}"
        self._cap = None

    def open(self) -> None:
        try:
            import cv2
        except ImportError as e:
            raise UserError("camera sources need OpenCV: pip install opencv-python-headless") from e
        cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            cap.release()
            raise UserError(f"cannot open camera {self.device} ({self.name}): no such device or it is busy")
        self._cap = cap
        self.fps = cap.get(cv2.CAP_PROP_FPS) or None

    def frames(self) -> Iterator[Frame]:
        import cv2

        t0, index = time.perf_counter(), 0
        while True:
            ok, bgr = self._cap.read()
            if not ok:
                log.warning("%s: the camera stopped delivering frames", self.name)
                return
            yield Frame(index, time.perf_counter() - t0, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def parse_source(spec: str | os.PathLike) -> Source:
    """``webcam:N`` -> camera, ``scheme://...`` -> live network stream, a folder -> frames, else a video file."""
    s = str(spec)
    cam = re.fullmatch(r"webcam:(\d+)", s)
    if cam:
        return WebcamSource(int(cam.group(1)))
    if s.startswith("webcam"):
        raise UserError(f"bad camera source '{s}': use webcam:N (e.g. webcam:0)")
    scheme = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*)://", s)
    if scheme:
        if scheme.group(1).lower() not in URL_SCHEMES:
            raise UserError(f"unsupported URL scheme '{scheme.group(1)}': use one of {', '.join(URL_SCHEMES)}")
        return VideoSource(s, live=True)
    if Path(s).is_dir():
        return FolderSource(s)
    return VideoSource(s, live=False)


def open_source(spec: str | os.PathLike | Source) -> Source:
    """Parse (unless already a :class:`Source`) and open a source."""
    source = spec if isinstance(spec, Source) else parse_source(spec)
    source.open()
    return source


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


_END = object()


class FrameReader:
    """Decodes ``source`` in a thread and yields ``(frame, prepared)`` pairs through a bounded queue.

    The thread owns the source from :meth:`start` on and closes it when done. An exception in the
    thread (including KeyboardInterrupt raised by a source) is re-raised in the consuming thread.
    """

    def __init__(self, source: Source, prepare: Callable[[np.ndarray], np.ndarray], maxsize: int = 4):
        self.source, self.prepare = source, prepare
        self.queue: queue.Queue = queue.Queue(1 if source.live else maxsize)  # live: the newest frame only
        self.dropped = 0
        self.ended = False  # set by poll() at the end of the source
        self.decode_ms, self.resize_ms = LatencyStats(), LatencyStats()  # host cost, in the decode thread
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"decode {source.name}", daemon=True)

    def start(self) -> "FrameReader":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            frames = iter(self.source.frames())
            while True:
                with self.decode_ms.time():
                    frame = next(frames, None)
                if frame is None:
                    break
                if self._stop.is_set():
                    return
                try:
                    with self.resize_ms.time():
                        prepared = self.prepare(frame.image)
                except (ValueError, OSError) as e:
                    self.source._skip(f"frame {frame.index}", e)
                    continue
                self._put((frame, prepared), newest=self.source.live)
            self._put(_END)
        except BaseException as e:  # forwarded to the consumer, KeyboardInterrupt included
            self._put(_Failure(e))
        finally:
            self.source.close()

    def _put(self, item: object, newest: bool = False) -> None:
        if newest:  # live: replace what inference has not taken yet
            while True:
                try:
                    self.queue.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        self.queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
        while not self._stop.is_set():  # lossless: wait for inference
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[tuple[Frame, np.ndarray]]:
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    def poll(self, timeout: float | None = None) -> tuple[Frame, np.ndarray] | None:
        """The next decoded frame if one is ready (waiting at most ``timeout`` s), else None; sets :attr:`ended`
        when the source has ended. Never blocks on a slow source beyond ``timeout``."""
        if self.ended:
            return None
        try:
            item = self.queue.get(timeout=timeout) if timeout else self.queue.get_nowait()
        except queue.Empty:
            return None
        if item is _END:
            self.ended = True
            return None
        if isinstance(item, _Failure):
            self.ended = True
            raise item.exc
        return item

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop, unblock it and wait for it (it closes the source)."""
        self._stop.set()
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout)
