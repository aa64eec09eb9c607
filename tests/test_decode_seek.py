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
