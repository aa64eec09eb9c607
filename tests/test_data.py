"""vidconv_edge.data: decoding, annotations, sampling, transforms, datasets, synthetic set, `synth` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from vidconv_edge.cli import main
from vidconv_edge.data.annotations import (
    MissingVideosWarning,
    load_kinetics_csv,
    load_list_file,
    load_split,
    load_ssv2,
    scan_class_folders,
)
from vidconv_edge.data.dataset import CorruptVideoWarning, VideoClipDataset, build_datasets, load_test_clip
from vidconv_edge.data.decode import VideoReadError, read_frames, video_info
from vidconv_edge.data.sampling import FrameSampler, fit_stride, tsn_test, tsn_train, vidconv_test, vidconv_train
from vidconv_edge.data.synth import _RENDERERS, DEFAULT_CLASSES, _Scene, render_video, write_synthetic_dataset
from vidconv_edge.data.transforms import ClipTransform, RandAugment, TransformOptions, flip_map_from_names, normalize
from vidconv_edge.errors import UserError


def ramp_video(path: Path, n: int = 20, size: int = 32, fmt: str = "mp4", codec: str = "libx264") -> list[int]:
    """A video whose frame i is a solid grey of level 10 + 12 i; returns the levels."""
    levels = [10 + 12 * i for i in range(n)]
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=10)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        for v in levels:
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((size, size, 3), v, np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return levels


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("d") / "synth", per_class=3, frames=18, size=64, seed=3, progress=False)


# -- decoding ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,codec,ext", [("mp4", "libx264", "mp4"), ("webm", "libvpx-vp9", "webm")])
def test_decode_round_trip_frame_accurate(tmp_path, fmt, codec, ext):
    path = tmp_path / f"ramp.{ext}"
    levels = ramp_video(path, fmt=fmt, codec=codec)
    assert video_info(path) == (20, 10.0, 32, 32)  # webm has no frame count in its header: counted
    idx = [19, 0, 7, 7, 12, 1]
    frames = read_frames(path, idx)
    assert frames.shape == (6, 32, 32, 3) and frames.dtype == np.uint8
    means = frames.reshape(6, -1).mean(1)
    np.testing.assert_allclose(means, [levels[i] for i in idx], atol=3)  # levels are 12 apart


def test_frame_folder_reads_like_a_video(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(12):  # img_00001.jpg .. img_00012.jpg, natural order (img_00010 after img_00009)
        Image.fromarray(np.full((24, 40, 3), 20 * i, np.uint8)).save(folder / f"img_{i + 1:05d}.jpg")
    assert video_info(folder) == (12, 30.0, 40, 24)
    frames = read_frames(folder, [11, 0, 9])
    assert frames.shape == (3, 24, 40, 3)
    np.testing.assert_allclose(frames.reshape(3, -1).mean(1), [220, 0, 180], atol=2)


def test_unreadable_videos_raise_video_read_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(VideoReadError, match="bad.mp4") as e:
        video_info(bad)
    assert isinstance(e.value, UserError)
    with pytest.raises(VideoReadError, match="not found"):
        read_frames(tmp_path / "missing.mp4", [0])
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    with pytest.raises(VideoReadError, match="no images"):
        video_info(empty)


# -- annotations ---------------------------------------------------------------------------------


def test_class_folders_and_list_files(synth_dir):
    items, names = scan_class_folders(synth_dir)
    assert names == sorted(DEFAULT_CLASSES) and len(items) == 30
    assert all(Path(p).parent.name == names[y] for p, y in items)
    listed = load_list_file(synth_dir / "train.txt", synth_dir, names)
    assert all(Path(p).is_file() for p, _ in listed)


def test_list_file_label_outside_class_list(tmp_path):
    lst = tmp_path / "train.txt"
    lst.write_text("a.mp4 0\nb.mp4 1\nc.mp4 5\n")
    with pytest.raises(UserError, match=r"train\.txt:3: label 5 is outside the class list \(2 classes"):
        load_list_file(lst, tmp_path, ["x", "y"])
    lst.write_text("a.mp4 y\nframes/b 30 x\n")  # class names and rawframe lines are accepted
    assert load_list_file(lst, tmp_path, ["x", "y"]) == [(str(tmp_path / "a.mp4"), 1), (str(tmp_path / "frames/b"), 0)]
    lst.write_text("a.mp4 zebra\n")
    with pytest.raises(UserError, match=r"train\.txt:1: label 'zebra' is outside the class list"):
        load_list_file(lst, tmp_path, ["x", "y"])


def test_kinetics_csv_split_and_label_folders(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "abc_000010_000020.mp4").write_bytes(b"x")
    (tmp_path / "air_drumming").mkdir()
    (tmp_path / "air_drumming" / "def_000000_000010.mp4").write_bytes(b"x")
    csv = tmp_path / "train.csv"
    csv.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "abseiling,abc,10,20,train\n"
        '"air drumming",def,0,10,train\n'
        "abseiling,gone,0,10,train\n"
    )
    with pytest.warns(MissingVideosWarning, match="1 of 3 videos not found"):
        items, names = load_kinetics_csv(csv, tmp_path)
    assert names == ["abseiling", "air drumming"]
    assert items == [
        (str(tmp_path / "train" / "abc_000010_000020.mp4"), 0),
        (str(tmp_path / "air_drumming" / "def_000000_000010.mp4"), 1),
    ]
    with pytest.raises(UserError, match=r"train\.csv:3: label 'air drumming' is outside the class list"):
        load_kinetics_csv(csv, tmp_path, ["abseiling"])


def test_ssv2_json(tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"Pushing something from left to right": "1", "Pushing something from right to left": "0"}))
    train = tmp_path / "train.json"
    entries = [
        {"id": "11", "label": "pushing pen from left to right", "template": "Pushing [something] from left to right"},
        {"id": "12", "label": "pushing cup from right to left", "template": "Pushing [something] from right to left"},
    ]
    train.write_text(json.dumps(entries))
    items, names = load_ssv2(train, labels, tmp_path)
    assert names == ["Pushing something from right to left", "Pushing something from left to right"]
    assert items == [(str(tmp_path / "11.webm"), 1), (str(tmp_path / "12.webm"), 0)]
    entries.append({"id": "13", "template": "Dropping [something]"})
    train.write_text(json.dumps(entries))
    with pytest.raises(UserError, match=r"train\.json: entry 2 \(id 13\): label 'Dropping something' is outside"):
        load_ssv2(train, labels, tmp_path)


def test_load_split_modes(synth_dir, tmp_path):
    train, val, names = load_split(synth_dir)  # train.txt / val.txt of the folder
    assert names == list(DEFAULT_CLASSES)
    assert len(train) + len(val) == 30 and not {p for p, _ in train} & {p for p, _ in val}
    assert sorted(y for _, y in val) == list(range(10))  # stratified: one val video per class
    tree = tmp_path / "tree"  # a bare class-folder tree: seeded stratified split
    for c in ("a", "b"):
        (tree / c).mkdir(parents=True)
        for i in range(5):
            (tree / c / f"{i}.mp4").write_bytes(b"x")
    t1, v1, n1 = load_split(tree)
    assert n1 == ["a", "b"] and (len(t1), len(v1)) == (8, 2) and load_split(tree)[1] == v1
    t2, v2, _ = load_split(synth_dir, synth_dir / "val.txt", synth_dir / "train.txt")  # explicit lists
    assert (t2, v2) == (val, train)
    with pytest.raises(UserError, match="not found"):
        load_split(tmp_path / "nope")


# -- sampling ------------------------------------------------------------------------------------


def test_vidconv_sampling():
    rng = np.random.default_rng(0)
    for _ in range(50):  # long video: stride drawn from 8..12, constant within the clip
        idx = vidconv_train(200, 9, (8, 12), rng)[0]
        d = np.diff(idx)
        assert idx.min() >= 0 and idx.max() < 200 and len(set(d)) == 1 and 8 <= d[0] <= 12
    idx = vidconv_train(18, 9, (8, 12), rng)[0]  # short: the largest stride that fits, 17 / 8
    assert fit_stride(18, 9, 10) == 17 / 8 and idx[0] == 0 and idx[-1] == 17 and np.all(np.diff(idx) >= 2)
    np.testing.assert_array_equal(vidconv_train(5, 9, (8, 12), rng)[0], [0, 1, 2, 3, 4, 4, 4, 4, 4])  # padded
    clips = vidconv_test(100, 4, 10, num_clips=3)
    assert clips.shape == (3, 4) and np.all(np.diff(clips, axis=1) == 10)
    starts = clips[:, 0]
    assert np.all(np.diff(starts) > 0) and starts[0] > 0 and clips[-1, -1] < 99  # evenly placed, centred
    np.testing.assert_array_equal(vidconv_test(100, 4, 10)[0], [35, 45, 55, 65])


def test_tsn_sampling():
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = tsn_train(80, 8, rng)[0]
        np.testing.assert_array_equal(idx // 10, np.arange(8))  # one frame per segment
    np.testing.assert_array_equal(tsn_test(80, 8)[0], np.arange(8) * 10 + 5)
    two = tsn_test(80, 8, num_clips=2)
    np.testing.assert_array_equal(two[0], np.arange(8) * 10 + 2)
    np.testing.assert_array_equal(two[1], np.arange(8) * 10 + 7)
    with pytest.raises(UserError, match="unknown sampling"):
        FrameSampler(8, True, "slowfast")


# -- transforms ----------------------------------------------------------------------------------


def asymmetric_clip(t: int = 4, h: int = 48, w: int = 64) -> torch.Tensor:
    img = torch.zeros(3, h, w, dtype=torch.uint8)
    img[0, :, : w // 3] = 255  # red left third
    img[2, h // 2 :, :] = 200  # blue lower half
    img[1] = torch.arange(w, dtype=torch.uint8).expand(h, w) * 3
    return img.expand(t, 3, h, w).clone()


def test_train_transform_same_parameters_for_all_frames():
    clip = asymmetric_clip()
    tf = ClipTransform(32, train=True, options=TransformOptions(randaugment=(3, 9)))
    for seed in range(20):
        out, _ = tf(clip, 0, np.random.default_rng(seed))
        assert out.shape == (4, 3, 32, 32) and out.dtype == torch.uint8
        assert all(torch.equal(out[0], f) for f in out[1:])  # identical frames stay identical
    ra = RandAugment(magnitude=9)
    x = clip.float()
    for op in RandAugment.OPS:
        y = ra.apply(x, op, 0.9, -1.0)
        assert y.shape == x.shape and all(torch.equal(y[0], f) for f in y[1:]), op
        assert (op == "identity") == torch.equal(y, x), op


def test_flip_swaps_labels():
    clip = asymmetric_clip(h=32, w=32)
    tf = ClipTransform(32, train=True, options=TransformOptions(short_side=32, scales=(1.0,), flip_map={0: 1, 1: 0}))
    seen = set()
    for seed in range(30):
        out, label = tf(clip, 0, np.random.default_rng(seed))
        flipped = torch.equal(out, clip.flip(-1))
        assert flipped or torch.equal(out, clip)
        assert label == (1 if flipped else 0)
        seen.add(flipped)
    assert seen == {True, False}
    ssv2 = ["Pushing something from left to right", "Pushing something from right to left", "Dropping something"]
    assert flip_map_from_names(ssv2) == {0: 1, 1: 0}
    assert flip_map_from_names(list(DEFAULT_CLASSES)) == {0: 1, 1: 0}  # left/right
    assert flip_map_from_names(["rotate_cw", "grow", "rotate_ccw"]) == {0: 2, 2: 0}


def test_eval_views_and_normalize():
    clip = asymmetric_clip(h=48, w=64)
    centre, _ = ClipTransform(32, train=False)(clip, 3)
    assert centre.shape == (4, 3, 32, 32)
    three, _ = ClipTransform(32, train=False, options=TransformOptions(crops=3))(clip, 3)
    assert three.shape == (3, 4, 3, 32, 32)
    assert three[0, 0, 0].float().mean() > three[2, 0, 0].float().mean()  # left crop holds the red third
    batch = torch.randint(0, 256, (2, 4, 3, 8, 8), dtype=torch.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ref = (batch.float() / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    out = normalize(batch, mean, std)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


# -- datasets ------------------------------------------------------------------------------------


def test_build_datasets_shapes(synth_dir):
    train, val, names = build_datasets(synth_dir, {"frames": 9, "size": 64}, randaugment=(2, 9))
    assert names == list(DEFAULT_CLASSES) and len(train) + len(val) == 30
    clip, label = train[0]
    assert clip.shape == (9, 3, 64, 64) and clip.dtype == torch.uint8 and 0 <= label < 10
    clip, label = val[0]
    assert clip.shape == (9, 3, 64, 64) and label == val.items[0][1]
    assert train.transform.opt.flip_map == {0: 1, 1: 0}
    _, val43, _ = build_datasets(synth_dir, (9, 64), val_views=(4, 3))
    assert val43[0][0].shape == (12, 9, 3, 64, 64)
    _, rev, _ = build_datasets(synth_dir, (9, 64), val_order="reverse")
    torch.testing.assert_close(rev[0][0], val[0][0].flip(0))  # frame order test: the same frames reversed
    one = load_test_clip(synth_dir / val.items[0][0], (9, 64), stride_range=(8, 12), flip=True)
    assert torch.equal(one, val[0][0])
    with pytest.raises(UserError, match="unknown data option"):
        build_datasets(synth_dir, (9, 64), stride=3)


def test_evaluation_clips_of_a_faster_video_span_the_time_the_model_learnt(tmp_path):
    """A 10 fps video for a model of 5 fps clips (recipe frame_rate 5): strides x2, frames 2, 6, ..., 18 (the same
    1.6 s as stride 2 at 5 fps); at the model's own rate, or with no rate recorded, the recipe's stride 2."""
    from vidconv_edge.train.eval_data import eval_dataset

    path = tmp_path / "ramp.mp4"
    levels = ramp_video(path, n=20)  # 10 fps

    def frames_of(clip: torch.Tensor) -> list[int]:
        return [int(np.argmin([abs(float(f.float().mean()) - v) for v in levels])) for f in clip]

    options = dict(stride_range=(1, 2), test_stride=2)
    assert frames_of(load_test_clip(path, (5, 32), **options, frame_rate=5.0)) == [2, 6, 10, 14, 18]
    assert frames_of(load_test_clip(path, (5, 32), **options, frame_rate=10.0)) == [6, 8, 10, 12, 14]
    assert frames_of(load_test_clip(path, (5, 32), **options)) == [6, 8, 10, 12, 14]
    (tmp_path / "list.txt").write_text("ramp.mp4 0\n")
    ckpt = {"class_names": ["a"], "input_spec": {"frames": 5, "size": 32},
            "recipe": {"data": {**options, "frame_rate": 5.0}}}  # fmt: skip
    assert frames_of(eval_dataset(tmp_path, ckpt, tmp_path / "list.txt")[0][0]) == [2, 6, 10, 14, 18]
    train = VideoClipDataset([(str(path), 0)], clip_len=5, size=32, train=True, stride_range=(2, 2), frame_rate=5.0)
    got = frames_of(train[0][0])
    assert all(b - a == 2 for a, b in zip(got, got[1:]))  # training clips are not paced


def test_corrupt_videos_skipped_and_counted(synth_dir, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"garbage" * 50)
    good = [(str(synth_dir / "grow" / f"grow_{i:04d}.mp4"), 4) for i in range(3)]
    ds = VideoClipDataset([(str(bad), 0)] + good, clip_len=4, size=32, train=True)
    with pytest.warns(CorruptVideoWarning, match="bad.mp4"):
        samples = [ds[i] for i in range(len(ds))]
    assert all(y == 4 and c.shape == (4, 3, 32, 32) for c, y in samples)  # another video stood in
    assert ds.failures == 1 and ds.failed_paths == [str(bad)]
    loader_ds = VideoClipDataset([(str(bad), 0)] + good, clip_len=4, size=32, train=False)
    # the worker process finds the bad file; the count is shared memory, so the parent sees it
    batches = list(torch.utils.data.DataLoader(loader_ds, batch_size=2, num_workers=1))
    assert sum(len(b[1]) for b in batches) == 4 and loader_ds.failures == 1
    all_bad = VideoClipDataset([(str(bad), 0), (str(tmp_path / "missing.mp4"), 1)], clip_len=4, size=32)
    with pytest.warns(CorruptVideoWarning), pytest.raises(UserError, match="all 2 videos of the dataset failed to read"):
        all_bad[0]
    assert all_bad.failures == 2


# -- synthetic set and CLI -----------------------------------------------------------------------


def test_synth_layout_decodes_and_is_deterministic(synth_dir, tmp_path):
    names = (synth_dir / "classes.txt").read_text().split()
    assert names == list(DEFAULT_CLASSES)
    train = (synth_dir / "train.txt").read_text().splitlines()
    val = (synth_dir / "val.txt").read_text().splitlines()
    assert len(train) == 20 and len(val) == 10
    for line in train + val:
        rel, label = line.split()
        assert Path(rel).parent.name == names[int(label)]
        assert video_info(synth_dir / rel) == (18, 15.0, 64, 64)
    again = write_synthetic_dataset(tmp_path / "again", per_class=3, frames=18, size=64, seed=3, progress=False)
    assert (again / "train.txt").read_text() == "\n".join(train) + "\n"
    rel = train[0].split()[0]
    assert (again / rel).read_bytes() == (synth_dir / rel).read_bytes()  # byte-identical MP4s
    other = write_synthetic_dataset(tmp_path / "other", per_class=3, frames=18, size=64, seed=4, progress=False)
    assert not np.array_equal(read_frames(other / rel, [0]), read_frames(synth_dir / rel, [0]))


def test_synth_classes_are_time_reversals():
    for fwd, bwd in [("move_right", "move_left"), ("grow", "shrink"), ("fill", "drain"), ("rotate_cw", "rotate_ccw"), ("brighten", "darken")]:
        a = render_video(fwd, 10, 48, np.random.default_rng(7))
        b = render_video(bwd, 10, 48, np.random.default_rng(7))
        np.testing.assert_array_equal(a[::-1], b)
        assert not np.array_equal(a[0], a[-1])  # something changes over time
    with pytest.raises(UserError, match="unknown synthetic class"):
        render_video("jump", 10, 48, np.random.default_rng(0))


def test_synth_motions_go_the_named_way():
    """On a black background with a white object: centroid, area and brightness follow the class name."""
    scene = _Scene(np.zeros((48, 48, 3)), "square", np.ones((2, 3)), "stripes", 1.0, 0.0)
    ys, xs = np.mgrid[0:48, 0:48]

    def track(name):
        clip = _RENDERERS[name](scene, 8, 48, np.random.default_rng(0)).astype(float).mean(-1)
        mass = clip.sum(axis=(1, 2))
        return (clip * xs).sum(axis=(1, 2)) / mass, (clip * ys).sum(axis=(1, 2)) / mass, mass

    assert np.all(np.diff(track("move_right")[0]) > 0)
    assert np.all(np.diff(track("move_down")[1]) > 0)
    assert np.all(np.diff(track("grow")[2]) > 0)
    assert np.all(np.diff(track("fill")[2]) > 0) and np.all(np.diff(track("fill")[1]) < 0)  # contents rise
    assert np.all(np.diff(track("brighten")[2]) > 0)


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "cli_synth"
    assert main(["synth", str(out), "--per-class", "2", "--frames", "6", "--size", "32", "--seed", "1"]) == 0
    assert "10 classes x 2 videos" in capsys.readouterr().out
    assert len((out / "train.txt").read_text().splitlines()) + len((out / "val.txt").read_text().splitlines()) == 20
    assert main(["synth", str(out)]) == 2  # not empty without --force
    assert "not empty" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "x"), "--size", "33"]) == 2
    assert main(["synth", str(tmp_path / "x"), "--classes", "grow,fly"]) == 2
    with pytest.raises(SystemExit) as e:
        main(["synth", str(tmp_path / "x"), "--per-class", "many"])
    assert e.value.code == 2
