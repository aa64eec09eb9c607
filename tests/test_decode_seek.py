"""Sparse frame reads seek to the keyframe before a wanted frame: the same frames as decoding everything."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from vidconv_edge.data import decode
from vidconv_edge.data.decode import read_frames

FRAMES = 60


def gop_video(path: Path, gop: int, n: int = FRAMES, w: int = 64, h: int = 48) -> Path:
    """H.264 with a keyframe every ``gop`` frames and B-frames (frames reordered), moving noise: every frame differs."""
    rng = np.random.default_rng(gop)
    base = rng.integers(0, 256, (h + n, w + n, 3), dtype=np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "2"}
        for i in range(n):
            img = np.ascontiguousarray(base[i : i + h, i : i + w])
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode())
    return path


@pytest.fixture(scope="module", params=[6, 1000], ids=["short-gop", "long-gop"])
def video(request, tmp_path_factory) -> tuple[Path, int]:
    return gop_video(tmp_path_factory.mktemp("gop") / f"g{request.param}.mp4", request.param), request.param


def _index_sets(gop: int) -> list[list[int]]:
    keys = range(0, FRAMES, gop)
    near_keys = sorted({i for k in keys for i in (k - 1, k, k + 1) if 0 <= i < FRAMES})
    return [
        np.linspace(0, FRAMES - 1, 9).round().astype(int).tolist(),  # uniform sampling
        near_keys,  # around every keyframe
        [FRAMES - 1],  # the last frame alone
        [FRAMES - 1, 0, 30, 30, 7],  # any order, repeats
        [3, FRAMES + 5, FRAMES - 2],  # past the end: the last frame
        list(range(FRAMES)),  # everything
    ]


def test_seeking_reader_returns_the_sequential_frames(video, monkeypatch):
    path, gop = video
    decode._INDEXES.clear()
    want = _index_sets(gop)
    sequential = [read_frames(path, idx, seek=False) for idx in want]
    assert not np.array_equal(sequential[2][0], sequential[0][0])  # frames differ: a wrong frame would show
    container = av.open(str(path))
    index = decode._frame_index(path, container, container.streams.video[0])
    container.close()
    assert index.keyframes == list(range(0, FRAMES, gop)) and len(index.pts) == FRAMES

    def no_fallback(*_):
        raise AssertionError("fell back to sequential decoding")

    # every read below is the seeking one, seeking wherever a keyframe lies ahead (the most seeks)
    monkeypatch.setattr(decode, "_decode_sequential", no_fallback)
    monkeypatch.setattr(decode, "_worth_seeking", lambda stream, want: True)
    monkeypatch.setattr(decode, "SEEK_MIN_GAP", 1)
    for idx, ref in zip(want, sequential):
        got = read_frames(path, idx)
        assert got.dtype == np.uint8 and np.array_equal(got, ref), idx


def test_short_gop_seeks_past_the_frames_it_does_not_need(tmp_path, monkeypatch):
    path = gop_video(tmp_path / "g6.mp4", 6)
    decode._INDEXES.clear()
    seeks = []
    real_seek = av.container.InputContainer.seek
    monkeypatch.setattr(av.container.InputContainer, "seek", lambda self, *a, **k: seeks.append(a[0]) or real_seek(self, *a, **k))
    sparse = read_frames(path, [5, 30, 55, 56])
    (index,) = decode._INDEXES.values()
    assert seeks == [0, index.pts[30], index.pts[54]]  # the index's rewind, the keyframes before 30 and 55
    assert np.array_equal(sparse, read_frames(path, [5, 30, 55, 56], seek=False))
    seeks.clear()
    read_frames(path, [0, 3, 7])  # no keyframe far enough ahead: decodes on, no index needed
    assert seeks == []


def test_resize_while_decoding(tmp_path):
    path = gop_video(tmp_path / "g6.mp4", 6)
    full = read_frames(path, [0, 40])
    small = read_frames(path, [0, 40], size=(32, 24))
    assert small.shape == (2, 24, 32, 3) and small.dtype == np.uint8
    ref = np.stack([np.asarray(Image.fromarray(f).resize((32, 24), Image.BILINEAR)) for f in full]).astype(int)
    assert np.abs(small.astype(int) - ref).mean() < 20  # the same picture (another filter: not the same pixels)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(full):
        Image.fromarray(f).save(folder / f"img_{i:05d}.png")
    assert read_frames(folder, [1], size=(32, 24)).shape == (1, 24, 32, 3)


def smooth_video(path: Path, w: int, h: int, n: int = 12) -> Path:
    """A moving colour gradient: resizing before or after the crop gives nearly the same pixels."""
    y, x = np.mgrid[0:h, 0:w]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            img = np.stack([(x + 3 * i) % 256, (y * 2) % 256, ((x + y) // 2 + i) % 256], -1).astype(np.uint8)
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode())
    return path


def test_the_dataset_decodes_large_frames_straight_to_its_short_side(tmp_path, monkeypatch):
    from vidconv_edge.data import dataset as ds_module
    from vidconv_edge.data.dataset import VideoClipDataset

    big, small = smooth_video(tmp_path / "big.mp4", 160, 120), smooth_video(tmp_path / "small.mp4", 40, 30)
    items = [(str(big), 0), (str(small), 1)]
    plain = VideoClipDataset(items, clip_len=4, size=32, train=False, stride_range=(2, 2))
    fast = VideoClipDataset(items, clip_len=4, size=32, train=False, stride_range=(2, 2), resize_at_decode=True)
    assert fast.transform.short_side == 37
    assert fast.decode_size(str(big)) == (49, 37)  # 160x120 scaled by 37/120
    assert fast.decode_size(str(small)) is None and plain.decode_size(str(big)) is None  # never upscaled; off
    sizes = []
    real = ds_module.read_frames
    monkeypatch.setattr(ds_module, "read_frames", lambda p, i, size=None: sizes.append(size) or real(p, i, size))
    a, b = plain[0][0], fast[0][0]
    assert sizes == [None, (49, 37)]
    assert a.shape == b.shape == (4, 3, 32, 32)
    assert (a.float() - b.float()).abs().mean() < 3  # the same view, resampled in another order
    assert torch.equal(plain[1][0], fast[1][0])  # a small video is decoded as it is


def test_resize_at_decode_reaches_both_datasets_from_the_recipe(tmp_path):
    from vidconv_edge.data.dataset import build_datasets
    from vidconv_edge.spec import InputSpec

    for name in ("a", "b"):
        for k in range(5):
            (tmp_path / name).mkdir(exist_ok=True)
            smooth_video(tmp_path / name / f"{k}.mp4", 64, 48, n=6)
    options = {"resize_at_decode": True, "stride_range": (1, 1)}
    train, val, _ = build_datasets(tmp_path, InputSpec(frames=4, size=32), **options)
    assert train.resize_at_decode and val.resize_at_decode
    assert train.decode_size(train.path(0)) == (49, 37)
    train, val, _ = build_datasets(tmp_path, InputSpec(frames=4, size=32), stride_range=(1, 1))
    assert not train.resize_at_decode and val.decode_size(val.path(0)) is None


def rotated_video(path: Path, degrees: int, n: int = 6, w: int = 96, h: int = 48) -> Path:
    """Frames stored landscape (w x h) with a display rotation, as a phone stores a video shot upright: an
    asymmetric pattern (a bright corner block, a grey bar on the right) so every turn and mirror differs."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 3, : w // 4] = 255
    img[:, -w // 8 :] = 128
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.set_display_rotation(degrees)
        for _ in range(n):
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode())
    return path


def _opencv_frames(path: Path) -> np.ndarray:
    """The frames as OpenCV decodes them (it applies the display rotation, as players do): the reference."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(bgr[..., ::-1])
    return np.stack(frames)


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_rotated_video_is_decoded_upright_by_every_reader(tmp_path, degrees):
    """read_frames (datasets, predict, eval), the footage loader (synth) and the stream source turn the frames of
    a video with a display rotation as OpenCV does; unturned, a phone video's pans would read as tilts."""
    from vidconv_edge.data.footage import load_footage
    from vidconv_edge.stream.sources import VideoSource

    path = rotated_video(tmp_path / f"r{degrees}.mp4", degrees)
    ref = _opencv_frames(path)
    assert ref.shape[1:3] == ((96, 48) if degrees != 180 else (48, 96))
    got = read_frames(path, range(len(ref)))
    assert got.shape == ref.shape and np.abs(got.astype(int) - ref).max() <= 2
    half = read_frames(path, [0], size=(48, 24))  # converted while decoding (stored size), then turned
    assert half.shape[1:3] == (ref.shape[1] // 2, ref.shape[2] // 2)
    assert np.abs(half[0].astype(int) - ref[0, ::2, ::2]).mean() < 8
    footage = load_footage(path)
    assert footage.frames.shape == ref.shape and np.abs(footage.frames.astype(int) - ref).max() <= 2
    source = VideoSource(str(path))
    source.open()
    try:
        streamed = np.stack([f.image for f in source.frames()])
    finally:
        source.close()
    assert streamed.shape == ref.shape and np.abs(streamed.astype(int) - ref).max() <= 2


def test_photos_are_read_upright_and_16_bit_images_keep_their_contrast(tmp_path):
    """rgb_image: a photo with an EXIF orientation is turned as viewers show it; a 16-bit grey image is scaled to
    8 bits (PIL's own conversion clips it to white)."""
    from vidconv_edge.pictures import rgb_image

    img = np.zeros((20, 40, 3), np.uint8)
    img[:5, :10] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    Image.fromarray(img).save(tmp_path / "p.jpg", exif=exif, quality=100)
    with Image.open(tmp_path / "p.jpg") as im:
        got = rgb_image(im)
    assert got.shape == (40, 20, 3)
    assert np.abs(got.astype(int) - np.rot90(img, -1)).max() <= 40  # JPEG edges; the block is in the top right
    ramp = (np.arange(64 * 32, dtype=np.uint32).reshape(32, 64) * 32).astype(np.uint16)  # 0 .. 65504
    Image.fromarray(ramp).save(tmp_path / "d.png")
    with Image.open(tmp_path / "d.png") as im:
        assert im.mode.startswith("I")
        got = rgb_image(im)
    assert got.dtype == np.uint8 and got.shape == (32, 64, 3)
    assert np.array_equal(got[..., 0], np.round(ramp / 257.0).astype(np.uint8)) and (got[..., 0] == got[..., 2]).all()
    assert got.min() == 0 and got.max() == 255


@pytest.mark.parametrize("motion", ["pan_left", "tilt_up"])
def test_a_phone_video_of_a_pan_is_a_pan(tmp_path, capsys, motion):
    """A clip of held-out footage stored as a phone stores an upright recording (frames turned 90 degrees, a display
    rotation that turns them back): `predict` with the bundled model says what it says of the upright file, the
    right class; read unturned, the pan would be a tilt and the tilt something else."""
    import json

    from vidconv_edge.cli import main
    from vidconv_edge.data.camera_motion import write_camera_motion_dataset

    data = write_camera_motion_dataset(tmp_path / "d", ("builtin:test",), per_class=1, seed=5, heldout=True,
                                       classes=["static", motion], progress=False)  # fmt: skip
    upright = data / motion / f"{motion}_0000.mp4"
    frames = read_frames(upright, range(18))
    phone = tmp_path / "phone.mp4"
    with av.open(str(phone), "w") as c:
        s = c.add_stream("libx264", rate=15)
        s.width, s.height, s.pix_fmt = frames.shape[1], frames.shape[2], "yuv420p"
        s.set_display_rotation(90)
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(f, -1)), format="rgb24")))
        c.mux(s.encode())
    labels = []
    for video in (upright, phone):
        assert main(["predict", str(video), "--json"]) == 0
        labels.append(json.loads(capsys.readouterr().out)["predictions"][0])
    assert labels[0]["label"] == labels[1]["label"] == motion, labels
    assert abs(labels[0]["prob"] - labels[1]["prob"]) < 0.05
