"""Stream outputs: the text box drawn on a frame, the overlay MP4's size and frames."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from test_stream import decoded
from vidconv_edge.stream.outputs import OverlayWriter, draw_text


def _dark(pixel: np.ndarray) -> bool:
    return bool((pixel < 120).all())


def test_text_box_covers_exactly_the_lines_and_the_text_is_white_in_it():
    image = np.full((120, 160, 3), 255, np.uint8)
    lines = ["ab", "cd 12"]
    out = draw_text(image, lines)
    assert out.shape == image.shape and (image == 255).all()  # drawn on a copy
    size, pad = 10, 2  # max(9, 120 // 12), max(2, size // 4)
    bottom = len(lines) * (size + pad) + pad  # 26: the rectangle includes its last row and column
    from PIL import ImageDraw, ImageFont

    width = int(ImageDraw.Draw(Image.fromarray(image)).textlength(lines[1], font=ImageFont.load_default(size=size)))
    right = width + 2 * pad
    assert _dark(out[bottom, 0]) and _dark(out[bottom, right]) and _dark(out[0, right])
    assert (out[bottom + 1, : right + 1] == 255).all() and (out[: bottom + 1, right + 1] == 255).all()
    assert tuple(out[bottom, 0]) == (105, 105, 105)  # black at alpha 150 over white
    for i in range(len(lines)):  # each line in its own band, in white (anti-aliased)
        top = pad + i * (size + pad)
        band = out[top : top + size, pad:right]
        assert (band >= 240).all(axis=-1).any(), i
        assert (band == 105).all(axis=-1).any(), i  # the box shows between the letters


def test_text_size_follows_the_frame_height():
    small, large = (draw_text(np.full((h, 4 * h, 3), 255, np.uint8), ["x"]) for h in (60, 240))
    rows = [int((img[:, 0] < 255).any(axis=-1).sum()) for img in (small, large)]
    assert rows == [9 + 2 * 2 + 1, 20 + 2 * 5 + 1]  # size max(9, h // 12), pad max(2, size // 4)


def test_overlay_size_is_scaled_up_and_even_and_counts_frames(tmp_path):
    writer = OverlayWriter(tmp_path / "o.mp4", fps=10)
    frame = np.full((81, 121, 3), 90, np.uint8)  # short side 81 -> x3 = 243 x 363 -> even: 242 x 362
    for _ in range(3):
        writer.write(frame, ["x"])
    assert writer.frames == 3
    writer.close()
    frames = decoded(tmp_path / "o.mp4")
    assert len(frames) == 3 and frames[0].shape == (242, 362, 3)


def test_a_frame_one_pixel_larger_is_cropped_other_sizes_resized(tmp_path, monkeypatch):
    calls = []
    resize = Image.Image.resize
    monkeypatch.setattr(Image.Image, "resize", lambda self, size, *a, **k: calls.append(size) or resize(self, size, *a, **k))
    writer = OverlayWriter(tmp_path / "o.mp4", fps=10)
    writer.write(np.zeros((243, 363, 3), np.uint8), ["x"])  # >= 240: no scaling, odd sides cropped to 242 x 362
    writer.write(np.zeros((243, 362, 3), np.uint8), ["x"])
    assert calls == []
    writer.write(np.zeros((244, 363, 3), np.uint8), ["x"])  # 2 rows more: resampled
    writer.write(np.zeros((243, 364, 3), np.uint8), ["x"])
    assert calls == [(362, 242), (362, 242)]
    writer.close()
    assert [f.shape for f in decoded(tmp_path / "o.mp4")] == [(242, 362, 3)] * 4


def test_overlay_not_closed_ok_leaves_no_file(tmp_path):
    writer = OverlayWriter(tmp_path / "o.mp4", fps=None)
    writer.write(np.zeros((240, 320, 3), np.uint8), ["x"])
    writer.close(ok=False)
    assert list(tmp_path.iterdir()) == []
    assert float(OverlayWriter(tmp_path / "p.mp4", fps=None).rate) == pytest.approx(25.0)


class _FakeCv2:
    """The part of OpenCV that LiveWindow uses; ``keys``: what waitKey returns, in turn."""

    class error(Exception):  # noqa: N801 - OpenCV's name
        pass

    WINDOW_NORMAL, COLOR_RGB2BGR = 0, 4

    def __init__(self, keys=(), window_error: str | None = None):
        self.keys, self.window_error, self.shown, self.destroyed = list(keys), window_error, [], []

    def namedWindow(self, title, flags):  # noqa: N802
        if self.window_error:
            raise self.error(self.window_error)

    def imshow(self, title, image):
        self.shown.append(image)

    def waitKey(self, delay):  # noqa: N802
        return self.keys.pop(0)

    def cvtColor(self, image, code):  # noqa: N802
        return image[..., ::-1]

    def destroyWindow(self, title):  # noqa: N802
        self.destroyed.append(title)


def test_live_window_shows_frames_until_q_or_escape(monkeypatch):
    import sys

    from vidconv_edge.stream.outputs import LiveWindow

    cv2 = _FakeCv2(keys=[255, 0x100 | ord("a"), 0x100 | ord("q"), 27])
    monkeypatch.setitem(sys.modules, "cv2", cv2)
    monkeypatch.setenv("DISPLAY", ":0")
    window = LiveWindow()
    frame = np.zeros((60, 80, 3), np.uint8)
    frame[..., 0] = 200  # red
    assert [window.show(frame, ["x"]) for _ in range(4)] == [True, True, False, False]  # 'q' and Esc, any modifier bits
    assert cv2.shown[0].shape == (60, 80, 3) and cv2.shown[0][-1, -1, 2] == 200  # BGR, text drawn top-left only
    window.close()
    assert cv2.destroyed == ["vidconv-edge stream"]


def test_live_window_errors_name_the_cause(monkeypatch):
    import sys

    from vidconv_edge.errors import UserError
    from vidconv_edge.stream.outputs import LiveWindow

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(UserError, match=r"^--show needs a display \(DISPLAY is not set\); write an --overlay MP4 instead$"):
        LiveWindow()
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    monkeypatch.setitem(sys.modules, "cv2", _FakeCv2(window_error="OpenCV(4.9) error:\n  The function is not implemented "))
    with pytest.raises(UserError, match=r"^--show: OpenCV cannot open a window \(The function is not implemented\)$"):
        LiveWindow()
    monkeypatch.setitem(sys.modules, "cv2", None)  # not installed
    with pytest.raises(UserError, match=r"^--show needs OpenCV with GUI support: pip install opencv-python$"):
        LiveWindow()
