"""Streaming sources: files, frame folders, URLs, cameras; corrupt frames, live drops, preprocessing."""

from __future__ import annotations

import functools
import http.server
import logging
import threading
import time

import av
import numpy as np
import pytest
import torch
from PIL import Image

from vidconv_edge.data.transforms import ClipTransform, normalize
from vidconv_edge.errors import UserError
from vidconv_edge.models import create_model
from vidconv_edge.models.base import InputSpec
from vidconv_edge.stream import run_stream
from vidconv_edge.stream.backends.torch_backend import TorchBackend
from vidconv_edge.stream.preprocess import Preprocessor
from vidconv_edge.stream.sources import FolderSource, Frame, FrameReader, Source, open_source, parse_source

from test_stream import write_video


def test_preprocess_matches_the_eval_transform_for_any_resolution():
    spec = InputSpec(9, 64, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    prep = Preprocessor(spec)
    rng = np.random.default_rng(0)
    for h, w in [(48, 160), (200, 90), (64, 64), (721, 1283)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        x = prep(img)
        assert x.shape == (3, 64, 64) and x.dtype == np.float32
        clip = torch.from_numpy(img).permute(2, 0, 1)[None]
        ref = normalize(ClipTransform(64, train=False)(clip, 0)[0], spec.mean, spec.std)[0]
        np.testing.assert_allclose(x, ref.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        prep(np.zeros((8, 8), np.uint8))


def test_video_file_frames_and_times(tmp_path):
    src = open_source(write_video(tmp_path / "v.mp4", frames=12))
    assert not src.live and src.fps == 10 and src.total == 12
    frames = list(src.frames())
    src.close()
    assert [f.index for f in frames] == list(range(12))
    assert frames[5].time == pytest.approx(0.5) and frames[0].image.shape == (72, 104, 3)


def test_corrupt_video_packet_is_skipped_with_a_warning(tmp_path, caplog):
    path = write_video(tmp_path / "v.mp4", frames=20)
    with av.open(str(path)) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    pos, size = packets[10]
    data[pos : pos + size] = b"\xff" * size
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="vidconv_edge.stream"):
        src = open_source(path)
        frames = list(src.frames())
    assert src.corrupt == 1 and len(frames) == 19
    assert "skipping a corrupt frame" in caplog.text


def test_frame_folder_natural_order_and_corrupt_image(tmp_path, caplog):
    for i in range(12):
        Image.fromarray(np.full((40, 50, 3), i * 20, np.uint8)).save(tmp_path / f"frame{i}.png")
    (tmp_path / "frame5.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored")
    src = parse_source(tmp_path)
    assert isinstance(src, FolderSource)
    src.open()
    with caplog.at_level(logging.WARNING, logger="vidconv_edge.stream"):
        frames = list(src.frames())
    assert [f.index for f in frames] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]  # frame10 after frame9
    assert [int(f.image[0, 0, 0]) for f in frames[:3]] == [0, 20, 40]
    assert src.corrupt == 1 and "frame5.png" in caplog.text
    assert frames[6].time == pytest.approx(7 / 25)


def test_stream_from_a_frame_folder(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(10):
        Image.fromarray(np.full((40, 50, 3), i * 20, np.uint8)).save(folder / f"{i:03d}.jpg")
    (folder / "004.jpg").write_bytes(b"\xff\xd8 broken")
    model = create_model("vic_edge", img_size=32, num_classes=3)
    summary = run_stream(folder, TorchBackend(model), progress=False)
    assert summary["frames_in"] == 9 and summary["frames_corrupt"] == 1 and summary["outputs"] == 1


@pytest.mark.parametrize(
    "spec,message",
    [
        ("missing.mp4", "^video source not found: missing.mp4$"),
        ("rtsp://127.0.0.1:9/cam", "^cannot open video source rtsp://127.0.0.1:9/cam: "),
        ("webcam:7", "camera"),  # no OpenCV here: says to install it; with OpenCV: cannot open camera 7
    ],
)
def test_unreachable_sources_are_user_errors(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=message):
        open_source(spec)


def test_empty_folder_and_non_video_file(tmp_path):
    with pytest.raises(UserError, match="holds no image files"):
        open_source(tmp_path)
    (tmp_path / "x.mp4").write_text("not a video")
    with pytest.raises(UserError, match="cannot open video source"):
        open_source(tmp_path / "x.mp4")


@pytest.fixture
def http_server(tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_url_is_a_live_source(tmp_path, http_server):
    write_video(tmp_path / "v.mp4", frames=12)
    src = open_source(f"{http_server}/v.mp4")
    assert src.live
    reader = FrameReader(src, lambda img: img).start()
    got = [f.index for f, _ in reader]
    reader.stop()
    assert len(got) + reader.dropped == 12 and got == sorted(got) and got[-1] == 11


class _FastLive(Source):
    """A live source producing frames faster than the (slowed) model consumes them."""

    name, live, fps = "fast-live", True, 100.0

    def frames(self):
        for i in range(40):
            time.sleep(0.002)
            yield Frame(i, i / 100, np.full((32, 32, 3), i, np.uint8))


class _SlowBackend(TorchBackend):
    def early(self, frames):
        time.sleep(0.02)
        return super().early(frames)


def test_live_source_drops_to_the_newest_frame_and_counts_drops():
    backend = _SlowBackend(create_model("vic_edge", img_size=32, num_classes=3))
    seen = []
    summary = run_stream(
        _FastLive(), backend, pad="first", progress=False, on_prediction=lambda p: seen.append(p.frame)
    )
    assert summary["frames_dropped"] > 10
    assert summary["frames_in"] + summary["frames_dropped"] == 40
    assert seen == sorted(seen) and seen[-1] == 39  # the newest frame always gets through


def test_file_sources_are_lossless_even_when_inference_is_slow(tmp_path):
    backend = _SlowBackend(create_model("vic_edge", img_size=32, num_classes=3))
    summary = run_stream(write_video(tmp_path / "v.mp4", frames=15), backend, progress=False)
    assert summary["frames_in"] == 15 and summary["frames_dropped"] == 0 and summary["outputs"] == 7


class _FakeCapture:
    """cv2.VideoCapture of a camera that delivers ``frames`` BGR images, then fails."""

    def __init__(self, device, frames: int = 3, opened: bool = True):
        self.device, self.left, self.opened, self.released = device, frames, opened, False

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return self.opened

    def read(self):
        if self.left == 0:
            return False, None
        self.left -= 1
        bgr = np.zeros((4, 6, 3), np.uint8)
        bgr[..., 0] = 10 * self.left  # blue channel: 20, 10, 0
        return True, bgr

    def get(self, prop):
        return 30.0

    def release(self):
        self.released = True


def _fake_cv2(monkeypatch, **capture):
    import sys
    import types

    made = []
    cv2 = types.SimpleNamespace(
        CAP_PROP_FPS=5, COLOR_BGR2RGB=4, error=RuntimeError,
        VideoCapture=lambda device: made.append(_FakeCapture(device, **capture)) or made[-1],
        cvtColor=lambda img, code: img[..., ::-1].copy(),
    )  # fmt: skip
    monkeypatch.setitem(sys.modules, "cv2", cv2)
    return made


def test_webcam_frames_in_rgb_until_the_camera_stops(monkeypatch, caplog):
    made = _fake_cv2(monkeypatch)
    src = parse_source("webcam:2")
    assert src.name == "webcam:2" and src.live
    src.open()
    assert made[0].device == 2 and src.fps == 30.0
    with caplog.at_level(logging.WARNING, logger="vidconv_edge.stream"):
        frames = list(src.frames())
    assert [f.index for f in frames] == [0, 1, 2] and [int(f.image[0, 0, 2]) for f in frames] == [20, 10, 0]
    assert all(b.time >= a.time for a, b in zip(frames, frames[1:]))
    assert "webcam:2: the camera stopped delivering frames" in caplog.text
    assert caplog.records[-1].name == "vidconv_edge.stream"  # the logger users configure
    src.close()
    assert made[0].released and src._cap is None
    src.close()  # twice is fine


def test_webcam_that_cannot_open_is_a_user_error_and_released(monkeypatch):
    made = _fake_cv2(monkeypatch, opened=False)
    with pytest.raises(UserError, match=r"^cannot open camera 3 \(webcam:3\): no such device or it is busy$"):
        open_source("webcam:3")
    assert made[0].released
    with pytest.raises(UserError, match="^bad camera source 'webcam-1': use webcam:N"):
        parse_source("webcam-1")


@pytest.mark.parametrize("scheme", ["rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt", "TCP"])
def test_every_network_scheme_is_a_live_source(scheme):
    src = parse_source(f"{scheme}://10.0.0.1:5000/stream")
    assert src.live and src.name == f"{scheme}://10.0.0.1:5000/stream"


def test_unsupported_scheme_is_named():
    with pytest.raises(UserError, match="^unsupported URL scheme 'ftp': use one of rtsp, rtsps, rtmp, http, https, udp, tcp, srt$"):
        parse_source("ftp://host/v.mp4")


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".PNG"])
def test_frame_folder_reads_every_image_format(tmp_path, suffix):
    for i in range(3):
        Image.fromarray(np.full((8, 10, 3), 60 * i, np.uint8)).save(tmp_path / f"f{i}{suffix}")
    src = open_source(tmp_path)
    assert src.total == 3
    frames = list(src.frames())
    assert len(frames) == 3 and frames[2].image.shape == (8, 10, 3)
    assert abs(int(frames[2].image[4, 5, 0]) - 120) <= 3  # lossy formats within a few levels


def test_video_with_an_audio_track_yields_only_its_video_frames(tmp_path):
    path = tmp_path / "av.mp4"
    with av.open(str(path), "w", format="mp4") as c:
        video = c.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p"
        audio = c.add_stream("aac", rate=16000)
        samples = 0
        for i in range(10):
            c.mux(video.encode(av.VideoFrame.from_ndarray(np.full((24, 32, 3), 20 * i, np.uint8), format="rgb24")))
            sound = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.float32), format="fltp", layout="mono")
            sound.sample_rate, sound.pts = 16000, samples
            samples += 1600
            c.mux(audio.encode(sound))
        c.mux(video.encode(None))
        c.mux(audio.encode(None))
    src = open_source(path)
    frames = list(src.frames())
    assert len(frames) == 10 and src.corrupt == 0 and src.total == 10
    assert [f.time for f in frames[:3]] == pytest.approx([0.0, 0.1, 0.2])
    src.close()
    assert src._container is None


def test_a_live_reader_holds_only_the_newest_frame():
    class Burst(Source):
        name, live = "burst", True

        def frames(self):
            for i in range(10):
                yield Frame(i, i / 10, np.full((4, 4, 3), i, np.uint8))

    reader = FrameReader(Burst(), lambda image: image).start()
    deadline = time.monotonic() + 10
    while reader.dropped < 9 and time.monotonic() < deadline:  # nobody reads: each frame replaces the one before
        time.sleep(0.01)
    assert reader.dropped == 9 and reader.queue.maxsize == 1
    frame, prepared = reader.poll(timeout=1)
    assert frame.index == 9 and int(prepared[0, 0, 0]) == 9
    assert reader.poll(timeout=1) is None and reader.ended
    reader.stop()
