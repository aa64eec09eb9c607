"""Stream outputs: JSON lines, the overlay MP4, the live window. Files are written atomically."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vidconv_edge.errors import UserError
from vidconv_edge.io import atomic_path
from vidconv_edge.stream.engine import Prediction


class JsonlWriter:
    """One JSON object per prediction; the file appears (renamed from its temp) on :meth:`close`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._file = self._stack.enter_context(open(tmp, "w", encoding="utf-8"))
        self.lines = 0

    def write(self, pred: Prediction, source: str | None = None) -> None:
        """One line; ``source`` (several sources in one stream) goes first in it."""
        line = pred.to_json() if source is None else {"source": source, **pred.to_json()}
        self._file.write(json.dumps(line) + "\n")
        self.lines += 1

    def close(self, ok: bool = True) -> None:
        """Commit the file (``ok``) or discard its temp file."""
        if ok:
            self._stack.close()
        else:
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)


def overlay_text(pred: Prediction | None, warmup: tuple[int, int], fps: float | None) -> list[str]:
    """The lines drawn on a frame: the top label and its confidence (or the warm-up state), the fps."""
    lines = [f"{pred.top[0][0]}  {pred.top[0][1] * 100:.1f}%"] if pred else [f"warming up {warmup[0]}/{warmup[1]}"]
    if fps:
        lines.append(f"{fps:.1f} fps")
    return lines


def draw_text(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """Draw ``lines`` top-left on a dark box over a copy of ``image`` (H, W, 3) uint8 RGB."""
    img = Image.fromarray(image)
    size = max(9, image.shape[0] // 12)
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(img, "RGBA")
    pad = max(2, size // 4)
    widths = [draw.textlength(line, font=font) for line in lines]
    box = (0, 0, int(max(widths)) + 2 * pad, len(lines) * (size + pad) + pad)
    draw.rectangle(box, fill=(0, 0, 0, 150))
    for i, line in enumerate(lines):
        draw.text((pad, pad + i * (size + pad)), line, font=font, fill=(255, 255, 255, 255))
    return np.asarray(img)


def pick_codec() -> str:
    """h264 (libx264) when this PyAV build can encode it, else mpeg4."""
    import av

    for name in ("libx264", "h264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except (av.error.FFmpegError, ValueError):
            continue
    raise UserError("this PyAV build has neither an h264 nor an mpeg4 encoder: cannot write the overlay MP4")


class OverlayWriter:
    """Writes every frame (with its text drawn) to an MP4. The output size is the first frame's size,
    scaled up by a whole factor when its short side is under ``min_side`` (so the text stays
    legible) and cropped to even sides for yuv420p; every frame is resized to it. The file
    appears on :meth:`close` and only if at least one frame was written."""

    min_side = 240

    def __init__(self, path: str | os.PathLike, fps: float | None):
        self.path = Path(path)
        self.rate = Fraction(fps or 25.0).limit_denominator(1001)
        self.frames = 0
        self._stack = contextlib.ExitStack()
        self._container = None
        self._stream = None

    def _open(self, image: np.ndarray) -> None:
        import av

        tmp = self._stack.enter_context(atomic_path(self.path))
        codec = pick_codec()
        self._container = av.open(str(tmp), mode="w", format="mp4")
        self._stream = self._container.add_stream(codec, rate=self.rate)
        scale = -(-self.min_side // min(image.shape[:2]))  # ceil
        self._stream.height, self._stream.width = (d * scale - d * scale % 2 for d in image.shape[:2])
        self._stream.pix_fmt = "yuv420p"
        if codec in ("libx264", "h264"):
            self._stream.options = {"preset": "veryfast", "crf": "23"}

    def write(self, image: np.ndarray, lines: list[str]) -> None:
        import av

        if self._container is None:
            self._open(image)
        h, w = self._stream.height, self._stream.width
        if image.shape[:2] != (h, w):
            if 0 <= image.shape[0] - h < 2 and 0 <= image.shape[1] - w < 2:
                image = image[:h, :w]
            else:
                image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(draw_text(image, lines)), format="rgb24")
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self, ok: bool = True) -> None:
        """Flush the encoder and commit the file (``ok``), or discard it."""
        if self._container is not None:
            if ok:
                self._container.mux(self._stream.encode(None))
            self._container.close()
            self._container = None
        if ok:
            self._stack.close()
        else:
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)


class LiveWindow:
    """An OpenCV window showing the overlay frames (imported only with --show). 'q' or Esc stops."""

    title = "vidconv-edge stream"

    def __init__(self):
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise UserError("--show needs a display (DISPLAY is not set); write an --overlay MP4 instead")
        try:
            import cv2
        except ImportError as e:
            raise UserError("--show needs OpenCV with GUI support: pip install opencv-python") from e
        self._cv2 = cv2
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise UserError(f"--show: OpenCV cannot open a window ({str(e).strip().splitlines()[-1].strip()})") from e

    def show(self, image: np.ndarray, lines: list[str]) -> bool:
        """Display one frame; False when the user asked to stop."""
        cv2 = self._cv2
        cv2.imshow(self.title, cv2.cvtColor(draw_text(image, lines), cv2.COLOR_RGB2BGR))
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        self._cv2.destroyWindow(self.title)
