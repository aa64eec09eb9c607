"""The camera-motion dataset maker: directions as a camera operator means them, stabilised footage, shot cuts,
bad footage, the folder layout, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from vidconv_edge.data.camera_motion import (
    CAMERA_CLASSES,
    MotionRanges,
    camera_path,
    render_clip,
    reverse_pair,
    write_camera_motion_dataset,
)
from vidconv_edge.data.decode import read_frames, video_info
from vidconv_edge.data.footage import Footage, builtin_footage, find_shots, load_footage, track_camera
from vidconv_edge.data.synth import encode_mp4
from vidconv_edge.errors import UserError

PLAIN = MotionRanges(drift=0.0, shake_share=0.0, movers_share=0.0, blur_share=0.0, ease_share=0.0)  # the camera alone


def texture(h: int, w: int, seed: int) -> np.ndarray:
    """A natural-looking random RGB image: smoothed noise at several scales (features everywhere)."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for cell in (4, 12, 40):
        small = rng.uniform(0, 255, size=(h // cell + 2, w // cell + 2, 3)).astype(np.float32)
        img += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    img -= img.min()
    return (img / img.max() * 255).astype(np.uint8)


def measured_motion(clip: np.ndarray) -> tuple[float, float, float]:
    """(x shift, y shift, log scale) of the content from the first to the last frame of ``clip``."""
    transforms, segments = track_camera(clip, [(0, len(clip))])
    assert segments == [(0, len(clip))]
    m = transforms[-1]
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    centre = np.array([clip.shape[2] / 2, clip.shape[1] / 2])
    shift = m[:, :2] @ centre + m[:, 2] - centre  # where the centre's content went
    return float(shift[0]), float(shift[1]), float(np.log(scale))


@pytest.fixture(scope="module")
def photo() -> Footage:
    return Footage("texture", texture(300, 400, 0)[None], shots=[(0, 1)])


@pytest.mark.parametrize("name", CAMERA_CLASSES)
def test_each_class_moves_the_scene_as_a_camera_operator_means_it(photo, name):
    clip, record = render_clip(name, photo, 12, 64, np.random.default_rng(3), r=PLAIN)
    assert clip.shape == (12, 64, 64, 3) and clip.dtype == np.uint8 and record.label == name
    dx, dy, ds = measured_motion(clip)
    expected = {  # the content's motion in the frame
        "static": (0, 0, 0),
        "pan_left": (1, 0, 0),  # the camera turns left: the scene slides right
        "pan_right": (-1, 0, 0),
        "tilt_up": (0, 1, 0),  # the camera turns up: the scene slides down
        "tilt_down": (0, -1, 0),
        "zoom_in": (0, 0, 1),  # the scene grows
        "zoom_out": (0, 0, -1),
    }[name]
    for got, sign, unit in ((dx, expected[0], 64), (dy, expected[1], 64), (ds, expected[2], 1.0)):
        if sign == 0:
            assert abs(got) < 0.02 * unit, (name, dx, dy, ds)
        else:
            assert got * sign > 0.1 * unit, (name, dx, dy, ds)  # at least 10% of the frame (or 10% in scale)


def test_windows_too_flat_to_show_the_motion_are_not_used(tmp_path):
    from PIL import Image

    from vidconv_edge.data.camera_motion import has_texture

    flat = np.full((64, 64, 3), 120, np.uint8) + np.random.default_rng(0).integers(0, 3, (64, 64, 3)).astype(np.uint8)
    assert not has_texture(flat) and has_texture(texture(64, 64, 1))
    sky = np.tile(np.linspace(90, 160, 300, dtype=np.uint8)[:, None, None], (1, 400, 3))  # a smooth gradient
    assert render_clip("pan_left", Footage("sky", sky[None], shots=[(0, 1)]), 8, 64, np.random.default_rng(0), r=PLAIN) is None
    half = sky.copy()
    half[:, 200:] = texture(300, 200, 2)  # textured on the right: clips come from there
    clip, _ = render_clip("pan_left", Footage("half", half[None], shots=[(0, 1)]), 8, 64, np.random.default_rng(0), r=PLAIN)
    assert has_texture(clip[0]) and has_texture(clip[-1])
    from vidconv_edge.data.camera_motion import has_textured_windows

    assert has_textured_windows(Footage("half", half[None], shots=[(0, 1)]), 64)
    assert not has_textured_windows(Footage("sky", sky[None], shots=[(0, 1)]), 64)
    Image.fromarray(sky).save(tmp_path / "sky.png")
    with pytest.raises(UserError, match="too flat to show the motion"):
        write_camera_motion_dataset(tmp_path / "s", [tmp_path / "sky.png"], per_class=1, frames=6, size=64, progress=False)


def test_reversed_clips_are_the_other_class_of_their_pair():
    assert [reverse_pair(n) for n in CAMERA_CLASSES] == [
        "static", "pan_right", "pan_left", "tilt_down", "tilt_up", "zoom_out", "zoom_in",
    ]  # fmt: skip


def test_paths_stay_inside_the_scene_and_honour_the_ranges():
    rng = np.random.default_rng(0)
    for name in CAMERA_CLASSES:
        for _ in range(30):
            p = camera_path(name, 18, 240, 320, 32, rng, PLAIN)
            half = p.side[:, None] / 2
            assert (p.centre - half >= -1e-9).all() and (p.centre + half <= np.array([320, 240]) + 1e-9).all()
            assert p.side.min() >= 32
            if name.startswith(("pan", "tilt")):
                travel = np.abs(p.centre[-1] - p.centre[0]).max() / p.side[0]
                assert PLAIN.travel[0] - 1e-9 <= travel <= PLAIN.travel[1] + 1e-9
            if name.startswith("zoom"):
                assert PLAIN.zoom[0] - 1e-9 <= max(p.side[0], p.side[-1]) / min(p.side[0], p.side[-1]) <= PLAIN.zoom[1] + 1e-9
    assert camera_path("pan_left", 18, 40, 40, 32, rng, PLAIN) is None  # no room to pan: the footage cannot hold it


def shaky_video(path, frames: int = 30, seed: int = 1) -> np.ndarray:
    """A video whose own camera pans 3 px per frame to the right over a large texture (scene slides left)."""
    big = texture(200, 400, seed)
    clip = np.stack([big[40:168, 20 + 3 * t : 20 + 3 * t + 160] for t in range(frames)])
    encode_mp4(path, clip, "libx264")
    return clip


def test_footage_with_its_own_camera_motion_is_stabilised(tmp_path):
    shaky_video(tmp_path / "pan.mp4")
    footage = load_footage(tmp_path / "pan.mp4")
    assert footage.is_video and footage.shots == [(0, 30)]
    shift = footage.motion[-1][:, 2]
    assert shift[0] == pytest.approx(-3 * 29, abs=3) and abs(shift[1]) < 2  # the scene moved 87 px left
    clip, record = render_clip("static", footage, 12, 64, np.random.default_rng(0), r=PLAIN)
    assert len(set(record.frames)) == 12  # the video plays
    dx, dy, ds = measured_motion(clip)
    assert abs(dx) < 1.5 and abs(dy) < 1.5 and abs(ds) < 0.02  # static stays static despite the source's pan
    clip, _ = render_clip("pan_left", footage, 12, 64, np.random.default_rng(1), r=PLAIN)
    assert measured_motion(clip)[0] > 6


def test_shot_cuts_are_found_and_no_clip_spans_one(tmp_path):
    a = texture(120, 160, 2)
    b = (texture(120, 160, 3) * np.array([0.5, 0.8, 1.0])).astype(np.uint8)  # another scene, another light
    roll = [np.roll(a, t, axis=1) for t in range(20)] + [np.roll(b, -t, axis=0) for t in range(20)]
    assert find_shots(np.stack(roll)) == [(0, 20), (20, 40)]
    encode_mp4(tmp_path / "cut.mp4", np.stack(roll), "libx264")
    footage = load_footage(tmp_path / "cut.mp4")
    assert footage.shots == [(0, 20), (20, 40)]
    rng = np.random.default_rng(0)
    for _ in range(20):
        clip, record = render_clip("static", footage, 10, 48, rng, r=PLAIN)
        assert (np.array(record.frames) < 20).all() or (np.array(record.frames) >= 20).all()


def test_bad_footage_is_named_and_skipped_and_nothing_usable_is_an_error(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "corrupt.mp4").write_bytes(b"not a video at all")
    Image.fromarray(texture(24, 50, 4)).save(tmp_path / "tiny.png")
    Image.fromarray(texture(120, 150, 5)).save(tmp_path / "good.png")
    Image.fromarray(np.full((120, 150, 3), 200, np.uint8)).save(tmp_path / "wall.png")  # no texture anywhere
    out = write_camera_motion_dataset(tmp_path / "set", [tmp_path], per_class=1, frames=6, size=64, progress=False)
    err = capsys.readouterr().err
    assert "corrupt.mp4" in err and "cannot be decoded" in err
    assert "tiny.png" in err and "smaller than the smallest crop window" in err
    assert "skipped footage " + str(tmp_path / "wall.png") + ": too flat to show the motion" in err
    assert json.loads((out / "synth.json").read_text())["footage"] == [str(tmp_path / "good.png")]
    with pytest.raises(UserError, match="no usable footage"):
        write_camera_motion_dataset(tmp_path / "none", [tmp_path / "corrupt.mp4", tmp_path / "tiny.png", tmp_path / "missing"],
                                    per_class=1, frames=6, size=64, progress=False)  # fmt: skip
    assert not (tmp_path / "none").exists()  # no half-written folder


def test_dataset_layout_lists_and_reproducibility(tmp_path):
    from PIL import Image

    Image.fromarray(texture(200, 260, 6)).save(tmp_path / "a.png")
    shaky_video(tmp_path / "b.mp4", frames=24)
    kw = dict(footage=[tmp_path / "a.png", tmp_path / "b.mp4"], per_class=3, frames=8, size=48, seed=5, progress=False)
    out = write_camera_motion_dataset(tmp_path / "one", **kw)
    assert (out / "classes.txt").read_text().split() == list(CAMERA_CLASSES)
    train = (out / "train.txt").read_text().splitlines()
    val = (out / "val.txt").read_text().splitlines()
    assert len(train) + len(val) == 21 and len(val) == 7  # one val clip per class (stratified 20%)
    records = [json.loads(line) for line in (out / "clips.jsonl").read_text().splitlines()]
    assert {r["label"] for r in records} == set(CAMERA_CLASSES) and len(records) == 21
    for line in train + val:
        rel, label = line.split()
        assert rel.split("/")[0] == CAMERA_CLASSES[int(label)]
        assert video_info(out / rel).num_frames == 8 and read_frames(out / rel, [0]).shape == (1, 48, 48, 3)
    again = write_camera_motion_dataset(tmp_path / "two", **kw)
    assert all((out / r["path"]).read_bytes() == (again / r["path"]).read_bytes() for r in records)
    held = write_camera_motion_dataset(tmp_path / "held", **{**kw, "per_class": 1}, heldout=True)
    assert not (held / "train.txt").exists() and len((held / "test.txt").read_text().splitlines()) == 7


def test_builtin_footage_is_installed_and_the_splits_are_disjoint():
    from vidconv_edge.data.footage import BUILTIN_FOOTAGE

    groups = {split: builtin_footage(split) for split in ("train", "val", "test")}
    assert {split: len(files) for split, files in groups.items()} == {s: len(BUILTIN_FOOTAGE[s]) for s in groups}
    names = [p.name for files in groups.values() for p in files]
    assert len(names) == len(set(names))
    assert all(any(p.suffix in (".mp4", ".mpg") for p in files) for files in groups.values())  # videos that play
    assert all(p.suffix in (".mp4", ".mpg") for p in groups["val"])  # the selection footage is all real video


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidconv_edge.cli", *args], capture_output=True, text=True, timeout=300)


def test_synth_cli_camera_motion_and_bad_input(tmp_path):
    from PIL import Image

    Image.fromarray(texture(150, 200, 7)).save(tmp_path / "scene.jpg")
    r = run_cli("synth", str(tmp_path / "set"), "--task", "camera-motion", "--footage", str(tmp_path / "scene.jpg"),
                "--per-class", "1", "--frames", "6", "--size", "48", "--classes", "static,zoom_in")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "2 classes" in r.stdout and (tmp_path / "set" / "zoom_in" / "zoom_in_0000.mp4").is_file()
    (tmp_path / "junk.avi").write_bytes(b"\0" * 100)
    r = run_cli("synth", str(tmp_path / "bad"), "--task", "camera-motion", "--footage", str(tmp_path / "junk.avi"), "--per-class", "1")
    assert r.returncode == 2 and "junk.avi" in r.stderr and "no usable footage" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "bad").exists()
    r = run_cli("synth", str(tmp_path / "x"), "--footage", str(tmp_path / "scene.jpg"))
    assert r.returncode == 2 and "--task camera-motion" in r.stderr


def test_an_animated_gif_is_video_footage_and_a_folder_scan_finds_it(tmp_path):
    """An animated GIF is a video (its frames play under the window, like an MP4's), a one-frame GIF a still, and
    both are found in a folder of footage; their pixels are the GIF's."""
    from PIL import Image

    from vidconv_edge.data.footage import footage_files

    rng = np.random.default_rng(0)
    scene = rng.integers(0, 256, (160, 240, 3), dtype=np.uint8)
    frames = [Image.fromarray(np.ascontiguousarray(np.roll(scene, 3 * i, axis=1))) for i in range(12)]
    folder = tmp_path / "footage"
    folder.mkdir()
    frames[0].save(folder / "clip.gif", save_all=True, append_images=frames[1:], duration=66, loop=0)
    frames[0].save(folder / "still.gif")
    assert footage_files([folder]) == [folder / "clip.gif", folder / "still.gif"]
    clip, still = (load_footage(folder / n) for n in ("clip.gif", "still.gif"))
    assert clip.is_video and clip.frames.shape == (12, 160, 240, 3) and not still.is_video
    with Image.open(folder / "clip.gif") as im:
        im.seek(5)
        assert np.array_equal(clip.frames[5], np.asarray(im.convert("RGB")))
