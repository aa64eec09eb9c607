"""Streaming: exactness of the frame-buffer engine against the whole model, backends, outputs, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn as nn

from vidconv_edge.checkpoint import save_checkpoint
from vidconv_edge.cli import main as cli_main
from vidconv_edge.errors import UserError
from vidconv_edge.models import InputSpec, create_model
from vidconv_edge.stream import StreamEngine, open_backend, run_stream
from vidconv_edge.stream.backends.torch_backend import TorchBackend
from vidconv_edge.stream.preprocess import Preprocessor
from vidconv_edge.stream.ring import FrameRing, collage
from vidconv_edge.stream.sources import Frame, Source

CLASSES = ["a", "b", "c", "d", "e"]


def lively(model: nn.Module) -> nn.Module:
    """Weights with O(1) activations and logits (the default init gives ~1e-4 logits, where a 1e-5
    tolerance would prove nothing), a strong temporal branch, random BN statistics."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2 / m.weight[0].numel()) ** 0.5)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
        for name, p in model.named_parameters():
            if name.endswith(("alpha", "gamma")):
                p.fill_(0.5)
        model.eval()
        spec = model.input_spec
        peak = model(torch.randn(1, spec.frames, 3, spec.size, spec.size, generator=g)).abs().max()
        model.head.fc.weight.mul_(3 / peak)
        model.head.fc.bias.mul_(3 / peak)
    return model


def small_edge() -> nn.Module:
    return lively(create_model("vic_edge", img_size=64, num_classes=5))


@pytest.fixture(scope="module")
def edge_ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "edge.pt"
    torch.manual_seed(0)
    save_checkpoint(path, small_edge(), CLASSES)
    return path


def write_video(path: Path, frames: int = 16, height: int = 72, width: int = 104, codec: str = "mpeg4") -> Path:
    """A real MP4 (PyAV) of a bar moving right over a gradient, at a size unlike the model's."""
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream(codec, rate=10)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            img = np.tile(np.linspace(0, 200, width, dtype=np.uint8)[None, :, None], (height, 1, 3))
            x = (i * 6) % (width - 10)
            img[:, x : x + 10] = (255, 40, 40)
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode(None))
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4")


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


# -- the frame buffer ---------------------------------------------------------------------------


def test_ring_returns_the_last_entries_oldest_first():
    ring = FrameRing(4)
    for i in range(3):
        ring.push(np.array([i]))
    assert not ring.ready
    for i in range(3, 7):
        ring.push(np.array([i]))
    assert ring.window().ravel().tolist() == [3, 4, 5, 6]
    ring.fill(np.array([9]))
    assert ring.window().ravel().tolist() == [9, 9, 9, 9]


def test_ring_of_one_and_the_errors_of_an_unfilled_ring():
    one = FrameRing(1)
    one.push(np.array([5]))
    one.push(np.array([6]))
    assert one.ready and one.window().ravel().tolist() == [6]
    with pytest.raises(ValueError, match="ring length must be >= 1, got 0"):
        FrameRing(0)
    ring = FrameRing(3)
    ring.push(np.array([1]))
    with pytest.raises(RuntimeError, match="ring holds 1 of 3 entries"):
        ring.window()
    with pytest.raises(RuntimeError, match="ring holds 1 of 3 entries"):
        ring.window_into([np.empty(1)] * 3)


@pytest.mark.parametrize("layout", [(3, 3), (2, 4), (1, 3)])
def test_collage_matches_the_model_layout(layout):
    model = create_model("vic_edge", img_size=64, layout=layout)
    feats = torch.randn(2 * layout[0] * layout[1], *model.early_shape())
    np.testing.assert_array_equal(collage(feats.numpy(), layout), model.collage(feats).numpy())


# -- exactness: streamed logits == the whole model on the same L frames ---------------------------


def _window(frames: np.ndarray, end: int, length: int, pad: str) -> np.ndarray:
    idx = [max(i, 0) for i in range(end - length + 1, end + 1)]
    if pad == "none":
        assert idx[0] >= 0
    return frames[idx]


# ViC-T's blocks (LayerNorm, GELU, layer scale, neck), narrower and shallower to keep the test fast
SMALL_TINY = dict(img_size=64, num_classes=5, dims=(24, 48, 96, 192), depths=(1, 1, 2, 1), neck_dim=288)
MODELS = {
    "vic_edge": lambda: create_model("vic_edge", img_size=64, num_classes=5),
    "vic_tiny_s1": lambda: create_model("vic_tiny", stack_stage=1, **SMALL_TINY),
    "vic_tiny_s3": lambda: create_model("vic_tiny", stack_stage=3, **SMALL_TINY),
}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("stride,pad", [(1, "none"), (2, "none"), (1, "first"), (2, "first")])
def test_stream_equals_whole_model(name, stride, pad):
    model = lively(MODELS[name]())
    frames = torch.randn(13, 3, 64, 64).numpy()
    engine = StreamEngine(TorchBackend(model, CLASSES), stride=stride, pad=pad, topk=3)
    preds = [engine.push(f, i, i / 10) for i, f in enumerate(frames)]
    start = 8 if pad == "none" else 0
    assert [p.frame for p in preds if p] == list(range(start, 13, stride))
    with torch.inference_mode():
        for i, p in enumerate(preds):
            if p is None:
                continue
            clip = torch.from_numpy(_window(frames, i, 9, pad))[None]
            ref = model(clip)[0].numpy()
            assert np.abs(ref).max() > 0.5  # logits of a real size
            assert np.abs(p.logits - ref).max() <= 1e-5
            probs = torch.softmax(torch.from_numpy(ref).double(), 0)
            assert p.top[0] == (CLASSES[int(probs.argmax())], pytest.approx(float(probs.max()), abs=1e-5))
            assert len(p.top) == 3
        wrong = model(clip.flip(1))[0].numpy()  # the check sees the frame order of the last window
        assert np.abs(preds[-1].logits - wrong).max() > 1e-2


@pytest.mark.parametrize("step,stride", [(2, 1), (3, 2)])
def test_a_frame_step_streams_every_kth_frame_as_the_whole_model_sees_them(step, stride):
    """frame_step K: the windows are of frames 0, K, 2K, ... (the whole model on those frames gives the logits),
    outputs are tagged with their source frame, and the stride counts taken frames."""
    model = lively(MODELS["vic_edge"]())
    frames = torch.randn(40, 3, 64, 64).numpy()
    engine = StreamEngine(TorchBackend(model, CLASSES), stride=stride, frame_step=step)
    preds = [engine.push(f, i, i / 30) for i, f in enumerate(frames)]
    taken = list(range(0, 40, step))
    assert [p.frame for p in preds if p] == taken[8::stride]
    with torch.inference_mode():
        for p in (p for p in preds if p):
            window = taken[taken.index(p.frame) - 8 : taken.index(p.frame) + 1]
            ref = model(torch.from_numpy(frames[window])[None])[0].numpy()
            assert np.abs(p.logits - ref).max() <= 1e-5
    assert engine.offered == 40 and engine.pushed == len(taken)


def test_recompute_reports_the_difference():
    engine = StreamEngine(TorchBackend(small_edge(), CLASSES), recompute=True)
    preds = [engine.push(f, i, 0.0) for i, f in enumerate(torch.randn(11, 3, 64, 64).numpy())]
    diffs = [p.reference_diff for p in preds if p]
    assert len(diffs) == 3 and engine.timings.full.count == 3
    assert engine.max_abs_diff == max(diffs) <= 1e-5


class _Clock:
    """A fake ``time.perf_counter``: it moves only when a stand-in backend call spends its preset duration."""

    def __init__(self, durations_ms: np.ndarray):
        self.t, self.durations, self.calls = 0.0, iter(durations_ms / 1e3), 0

    def __call__(self) -> float:
        return self.t

    def spend(self) -> None:
        self.t += next(self.durations)
        self.calls += 1


class _ClockBackend:
    """A stand-in backend of 4x4 frames (no model): early = the red channel, later = the collage's sum; every
    call spends the next preset duration on a :class:`_Clock`."""

    name, model_name, class_names = "clock", "clock", ["a", "b"]
    channels_last, whole_clip, frame_rate = False, False, None
    input_spec = InputSpec(9, 4, layout=(3, 3))

    def __init__(self, clock: _Clock):
        self.clock = clock

    def early(self, frames: np.ndarray) -> np.ndarray:
        self.clock.spend()
        return frames[:, :1]

    def later(self, collage: np.ndarray) -> np.ndarray:
        self.clock.spend()
        return np.array([[collage.sum(), 0.0]], np.float32)

    def full(self, clip: np.ndarray) -> np.ndarray:
        raise AssertionError("not called without --recompute")


def clocked_stream(frames: int, monkeypatch) -> tuple[StreamEngine, np.ndarray]:
    """``frames`` pushes through a :class:`_ClockBackend`; (the engine, every call's duration in order, ms)."""
    from vidconv_edge.stream import stats

    durations = np.random.default_rng(0).uniform(0.5, 3.0, 2 * frames)
    clock = _Clock(durations)
    monkeypatch.setattr(stats.time, "perf_counter", clock)
    engine = StreamEngine(_ClockBackend(clock))
    frame = np.zeros((3, 4, 4), np.float32)
    for i in range(frames):
        engine.push(frame, i, 0.0)
    return engine, durations[: clock.calls]


def split_calls(durations: np.ndarray, length: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """(early, later) durations of a stride-1 stream: one early per frame, then one later from frame L on."""
    early = np.concatenate([durations[: length - 1], durations[length - 1 :: 2]])
    return early, durations[length::2]


def test_engine_timings_stay_bounded_over_a_long_stream(monkeypatch):
    """20,000 frames: every call counted and summed, only the last WINDOW kept (a live stream runs for days)."""
    from vidconv_edge.stream.stats import WINDOW

    engine, durations = clocked_stream(20_000, monkeypatch)
    early, later = split_calls(durations)
    assert (len(early), len(later)) == (20_000, 20_000 - 8)
    for stats, values in ((engine.timings.early, early), (engine.timings.later, later)):
        assert len(stats.recent) == stats.recent.maxlen == WINDOW and stats.count == len(values)
        assert stats.total_ms == pytest.approx(values.sum(), rel=1e-9)
        np.testing.assert_allclose(stats.percentiles(), np.percentile(values[-WINDOW:], [50, 95]), rtol=1e-9)
    assert engine.timings.full.count == 0 and not engine.timings.full.recent


def test_engine_timings_equal_numpy_on_a_short_stream(monkeypatch):
    engine, durations = clocked_stream(40, monkeypatch)
    early, later = split_calls(durations)
    assert (engine.timings.early.count, engine.timings.later.count) == (40, 32)
    for stats, values in ((engine.timings.early, early), (engine.timings.later, later)):
        np.testing.assert_allclose(list(stats.recent), values, rtol=1e-9)
        assert stats.mean_ms == pytest.approx(values.mean(), rel=1e-9)
        np.testing.assert_allclose(stats.percentiles(), np.percentile(values, [50, 95]), rtol=1e-9)


def test_merged_stats_pool_every_sources_recent_calls():
    """The multi-source total's percentiles see each source's recent window, not just the last source's."""
    from vidconv_edge.stream.stats import WINDOW, LatencyStats, merged

    rng = np.random.default_rng(0)
    lanes, values = [LatencyStats() for _ in range(3)], [rng.uniform(k, k + 1, WINDOW + 500) for k in range(3)]
    for stats, v in zip(lanes, values):
        for ms in v:
            stats.add(ms)
    total = merged(lanes)
    recent = np.concatenate([v[-WINDOW:] for v in values])
    assert total.count == 3 * (WINDOW + 500) and total.total_ms == pytest.approx(np.concatenate(values).sum())
    np.testing.assert_allclose(total.percentiles(), np.percentile(recent, [50, 95]))


def test_host_cost_per_frame_is_each_stages_total_over_the_frames():
    from vidconv_edge.stream.stats import LatencyStats, host_cost_per_frame

    decode, resize = LatencyStats(), LatencyStats()
    for ms in (1.0, 2.0, 3.5):
        decode.add(ms)
    resize.add(0.123456)
    assert host_cost_per_frame({"decode": decode, "resize": resize}, 4) == {"decode": 1.625, "resize": 0.0309}
    assert host_cost_per_frame({"decode": decode}, 0) == {"decode": None}


def test_latency_percentiles_cover_the_last_4096_calls_as_the_readme_says():
    from vidconv_edge.stream.stats import LatencyStats

    stats = LatencyStats()
    for ms in [1000.0] * 10 + [1.0] * 4096:  # the slow first calls fall out of the window
        stats.add(ms)
    assert stats.percentiles() == (1.0, 1.0) and max(stats.recent) == 1.0 and stats.count == 4106


@pytest.mark.parametrize("name", list(MODELS))
def test_torch_backend_parts_equal_the_eager_model(name):
    """The backend runs the model traced and frozen: each part still equals the eager model, the early-net
    (traced on one frame) on any number of frames, and a clip of the wrong shape is still refused."""
    model = lively(MODELS[name]())
    backend = TorchBackend(model, CLASSES)
    clip = torch.randn(1, 9, 3, 64, 64)
    with torch.inference_mode():
        feats = model.forward_early(clip[0, :4])
        collage = model.collage(model.forward_early(clip[0]))
        logits, ref = model.forward_later(collage), model(clip)
    feats = feats.permute(0, 2, 3, 1).numpy()  # BN folded into the convs: float32 rounding of maps up to ~40
    np.testing.assert_allclose(backend.early(clip[0, :4].numpy()), feats, atol=1e-6 * np.abs(feats).max())
    collage = np.ascontiguousarray(collage.permute(0, 2, 3, 1).numpy())
    np.testing.assert_allclose(backend.later(collage), logits.numpy(), atol=1e-5)
    np.testing.assert_allclose(backend.full(clip.numpy()), ref.numpy(), atol=1e-5)
    with pytest.raises(UserError, match="expected a clip of shape"):
        backend.full(clip[:, :8].numpy())


def test_engine_rejects_bad_settings():
    backend = TorchBackend(small_edge(), CLASSES)
    with pytest.raises(UserError, match="pad policy 'last'"):
        StreamEngine(backend, pad="last")
    with pytest.raises(UserError, match="--stride must be >= 1"):
        StreamEngine(backend, stride=0)
    with pytest.raises(UserError, match="--frame-step must be >= 1, got 0"):
        StreamEngine(backend, frame_step=0)


def test_model_without_the_split_streams_the_whole_window(video):
    """SEVNet has no early/later split: every output runs the model on the last L frames (no feature buffer),
    equal to the model on those frames; --recompute (buffer vs whole clip) has nothing to check and is refused."""
    model = create_model("sevnet_edge", img_size=32, frames=4, num_classes=5).eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
        model.fc.weight.mul_(100.0)  # O(1) logits: a 1e-5 tolerance then means something
    backend = TorchBackend(model, CLASSES)
    assert backend.whole_clip
    preds: list = []
    summary = run_stream(video, backend, stride=3, progress=False, on_prediction=preds.append)
    assert [p.frame for p in preds] == [3, 6, 9, 12, 15] and summary["outputs"] == 5 and summary["clip_ms_p50"] > 0
    prep = Preprocessor(backend.input_spec)
    x = np.stack([prep(f) for f in decoded(video)])
    with torch.no_grad():
        for p in preds:
            ref = model(torch.from_numpy(x[None, p.frame - 3 : p.frame + 1])).numpy()[0]
            assert np.abs(ref).max() > 0.1 and np.abs(p.logits - ref).max() <= 1e-5
    with pytest.raises(UserError, match="runs the whole clip for every output already"):
        StreamEngine(backend, recompute=True)


# -- run_stream on a real video -----------------------------------------------------------------


def test_run_stream_writes_jsonl_and_overlay(video, edge_ckpt, tmp_path):
    out_json, out_mp4 = tmp_path / "out.jsonl", tmp_path / "out.mp4"
    summary = run_stream(video, edge_ckpt, jsonl=out_json, overlay=out_mp4, topk=2, progress=False)
    lines = [json.loads(line) for line in out_json.read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(8, 16))
    assert set(lines[0]) == {"frame", "time", "top", "logits"}
    assert lines[3]["time"] == pytest.approx(1.1)
    assert len(lines[0]["top"]) == 2 and len(lines[0]["logits"]) == 5
    # the same numbers from the decoded frames through the whole model
    backend = open_backend(edge_ckpt)
    prep = Preprocessor(backend.input_spec)
    x = np.stack([prep(f) for f in decoded(video)])
    ref = backend.full(x[None, 7:16])[0]
    assert np.abs(np.array(lines[-1]["logits"]) - ref).max() <= 1e-5
    frames = decoded(out_mp4)
    assert len(frames) == 16 and frames[0].shape == (288, 416, 3)  # 72x104 scaled up x4 for legible text
    assert summary["frames_in"] == 16 and summary["outputs"] == 8 and summary["frames_dropped"] == 0
    assert summary["early_ms_p50"] > 0 and summary["later_ms_p95"] >= summary["later_ms_p50"]
    assert not summary["interrupted"] and summary["overlay"] == str(out_mp4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "out.mp4"]  # no temp files left


@pytest.mark.parametrize("source_fps, model_rate, step", [(30, 15, 2), (25, 15, 2), (20, 15, 1), (60, 15, 4),
                                                         (29.97, 15, 2), (10, 15, 1), (None, 15, 1), (30, None, 1)])
def test_the_automatic_frame_step_brings_the_source_nearest_the_models_frame_rate(source_fps, model_rate, step):
    from vidconv_edge.stream.engine import paced_frame_step

    assert paced_frame_step(source_fps, model_rate) == step


def test_cli_frame_step_auto_paces_a_faster_source_to_the_rate_the_model_learnt(video, tmp_path, capsys):
    """A model whose recipe records 5 fps training clips takes every 2nd frame of a 10 fps video by default (the
    outputs of --frame-step 2); without a recorded rate, and with --frame-step 1, it takes every frame."""
    from vidconv_edge.cli import main

    paced = tmp_path / "paced.pt"
    torch.manual_seed(0)
    save_checkpoint(paced, small_edge(), CLASSES, recipe={"data": {"frame_rate": 5.0}})
    long_video = write_video(tmp_path / "v.mp4", frames=24)  # 10 fps

    def stream(*extra) -> tuple[dict, list[int]]:
        out_json = tmp_path / "o.jsonl"
        assert main(["stream", str(paced), "--source", str(long_video), "--jsonl", str(out_json), "--json", "--quiet", *extra]) == 0
        return json.loads(capsys.readouterr().out), [json.loads(line)["frame"] for line in out_json.read_text().splitlines()]

    summary, frames = stream()
    assert summary["frame_step"] == 2 and summary["frame_step_auto"] and frames == [16, 18, 20, 22]
    assert summary["source_fps"] == 10 and summary["model_frame_rate"] == 5
    assert stream("--frame-step", "2")[1] == frames
    summary, frames = stream("--frame-step", "1")
    assert summary["frame_step"] == 1 and not summary["frame_step_auto"] and frames == list(range(8, 24))
    assert open_backend(paced, "onnxruntime").frame_rate == 5.0  # carried into the exported parts' metadata
    with pytest.raises(SystemExit) as e:
        main(["stream", str(paced), "--source", str(long_video), "--frame-step", "fast"])
    assert e.value.code == 2 and "K must be a whole number >= 1 or auto, got 'fast'" in capsys.readouterr().err


def test_cli_frame_step_takes_every_second_frame_and_the_overlay_keeps_them_all(video, edge_ckpt, tmp_path, capsys):
    """`stream --frame-step 2`: outputs at source frames 16, 18, ... of a 24-frame video (the window of 9 taken
    frames 0, 2, ..., 16 first), logits of the whole model on those frames; the overlay has every frame."""
    from vidconv_edge.cli import main

    long_video = write_video(tmp_path / "v.mp4", frames=24)
    out_json, out_mp4 = tmp_path / "o.jsonl", tmp_path / "o.mp4"
    args = ["stream", str(edge_ckpt), "--source", str(long_video), "--frame-step", "2", "--jsonl", str(out_json),
            "--overlay", str(out_mp4), "--json", "--quiet"]  # fmt: skip
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    lines = [json.loads(line) for line in out_json.read_text().splitlines()]
    assert [r["frame"] for r in lines] == [16, 18, 20, 22]
    assert summary["frame_step"] == 2 and summary["frames_in"] == 24 and summary["outputs"] == 4
    backend = open_backend(edge_ckpt)
    prep = Preprocessor(backend.input_spec)
    x = np.stack([prep(f) for f in decoded(long_video)])
    assert np.abs(np.array(lines[0]["logits"]) - backend.full(x[None, 0:17:2])[0]).max() <= 1e-5
    assert len(decoded(out_mp4)) == 24
    assert main(["stream", str(edge_ckpt), "--source", str(long_video), "--frame-step", "0"]) == 2
    assert "--frame-step must be >= 1, got 0" in capsys.readouterr().err


def test_overlay_draws_warmup_then_label(video, edge_ckpt, tmp_path):
    from vidconv_edge.stream.outputs import overlay_text

    from PIL import Image

    run_stream(video, edge_ckpt, overlay=tmp_path / "o.mp4", progress=False)
    frames = decoded(tmp_path / "o.mp4")
    for f, p in zip(frames, decoded(video)):
        plain = np.asarray(Image.fromarray(p).resize((416, 288), Image.BILINEAR)).astype(float)
        assert np.abs(f[:40, :100] - plain[:40, :100]).mean() > 20  # the text box is drawn on every frame
        assert np.abs(f[-100:, -100:] - plain[-100:, -100:]).mean() < 8  # the rest is the frame itself
    assert overlay_text(None, (3, 9), 12.34) == ["warming up 3/9", "12.3 fps"]


class _InterruptAfter(Source):
    """A source of ``n`` frames that then raises KeyboardInterrupt (like Ctrl-C)."""

    name = "interrupting"

    def __init__(self, n: int):
        self.n = n
        self.fps = 10.0

    def frames(self):
        for i in range(self.n):
            img = np.full((64, 64, 3), 20 * i, np.uint8)
            yield Frame(i, i / 10, img)
        raise KeyboardInterrupt


def test_ctrl_c_still_finalises_jsonl_mp4_and_summary(edge_ckpt, tmp_path):
    summary = run_stream(
        _InterruptAfter(12), edge_ckpt, jsonl=tmp_path / "o.jsonl", overlay=tmp_path / "o.mp4", progress=False
    )
    assert summary["interrupted"] and summary["frames_in"] == 12 and summary["outputs"] == 4
    lines = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == [8, 9, 10, 11]
    assert len(decoded(tmp_path / "o.mp4")) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jsonl", "o.mp4"]


def test_cli_ctrl_c_exit_code_and_summary(edge_ckpt, tmp_path, monkeypatch, capsys):
    import vidconv_edge.stream.run as run_mod

    real_open = run_mod.open_source
    monkeypatch.setattr(run_mod, "open_source", lambda spec: real_open(_InterruptAfter(10)))
    rc = cli_main(["stream", str(edge_ckpt), "--source", "x", "--quiet", "--jsonl", str(tmp_path / "o.jsonl")])
    assert rc == 130
    assert "stream summary" in capsys.readouterr().out
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 2


def test_failure_leaves_no_partial_files(edge_ckpt, tmp_path):
    class Broken(Source):
        name = "broken"

        def frames(self):
            yield Frame(0, 0.0, np.zeros((64, 64, 3), np.uint8))
            raise RuntimeError("decoder crashed")

    with pytest.raises(RuntimeError, match="decoder crashed"):
        run_stream(Broken(), edge_ckpt, jsonl=tmp_path / "o.jsonl", overlay=tmp_path / "o.mp4", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_pad_first_outputs_from_the_first_frame(video, edge_ckpt, tmp_path):
    summary = run_stream(video, edge_ckpt, pad="first", stride=3, jsonl=tmp_path / "o.jsonl", progress=False)
    frames = [json.loads(line)["frame"] for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert frames == [0, 3, 6, 9, 12, 15] and summary["outputs"] == 6


# -- backends -------------------------------------------------------------------------------------


def test_onnxruntime_backend_matches_torch(video, edge_ckpt, tmp_path):
    from vidconv_edge.export.onnx import export_onnx
    from vidconv_edge.models.loading import model_from_checkpoint

    model, ckpt = model_from_checkpoint(edge_ckpt)
    for part in ("early", "later", "full"):
        export_onnx(model, tmp_path / f"{part}.onnx", part=part, class_names=ckpt["class_names"])
    ort_sum = run_stream(video, tmp_path, jsonl=tmp_path / "ort.jsonl", recompute=True, progress=False)
    assert ort_sum["backend"] == "onnxruntime" and ort_sum["max_abs_diff"] <= 1e-5
    run_stream(video, edge_ckpt, jsonl=tmp_path / "pt.jsonl", progress=False)
    a = [json.loads(x) for x in (tmp_path / "ort.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "pt.jsonl").read_text().splitlines()]
    assert len(a) == len(b) == 8
    assert max(np.abs(np.subtract(x["logits"], y["logits"])).max() for x, y in zip(a, b)) <= 1e-4
    assert [x["top"][0][0] for x in a] == [y["top"][0][0] for y in b]
    # the early file itself also works; --recompute without full.onnx says what is missing
    (tmp_path / "full.onnx").unlink()
    backend = open_backend(tmp_path / "early.onnx", "onnxruntime")
    assert backend.class_names == CLASSES and backend.input_spec.layout == (3, 3)
    with pytest.raises(UserError, match="needs the 'full' ONNX part"):
        run_stream(video, backend, recompute=True, progress=False)
    (tmp_path / "later.onnx").unlink()
    with pytest.raises(UserError, match="needs the 'later' ONNX part"):
        open_backend(tmp_path)


def test_default_checkpoint_is_used_without_a_model(video, edge_ckpt, monkeypatch):
    import vidconv_edge.assets as assets

    monkeypatch.setattr(assets, "default_checkpoint", lambda: edge_ckpt)
    summary = run_stream(video, progress=False)
    assert summary["backend"] == "torch" and summary["model"] == "vic_edge" and summary["outputs"] == 8


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_stream_end_to_end(video, edge_ckpt, tmp_path, capsys):
    rc = cli_main(
        ["stream", str(edge_ckpt), "--source", str(video), "--stride", "2", "--jsonl", str(tmp_path / "o.jsonl"),
         "--recompute", "--topk", "1", "--quiet", "--summary-json", str(tmp_path / "s.json")]
    )  # fmt: skip
    assert rc == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["outputs"] == 4 and summary["max_abs_diff"] <= 1e-5
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 4
    assert "max_abs_diff" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,message",
    [
        (["--source", "/nonexistent/clip.mp4"], "video source not found: /nonexistent/clip.mp4"),
        (["--source", "http://127.0.0.1:9/live.mp4"], "cannot open video source http://127.0.0.1:9/live.mp4"),
        (["--source", "webcam:x"], "use webcam:N"),
        (["--source", "ftp://host/x.mp4"], "unsupported URL scheme 'ftp'"),
        (["--source", "{video}", "--backend", "finn-sim"], "needs a build-fpga output folder"),
    ],
)
def test_cli_bad_input_exits_2(args, message, video, edge_ckpt, capsys):
    rc = cli_main(["stream", str(edge_ckpt), *[a.format(video=video) for a in args], "--quiet"])
    assert rc == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("option,value", [("--backend", "tensorrt"), ("--pad", "last")])
def test_cli_unknown_choice_exits_2(option, value, video, edge_ckpt, capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["stream", str(edge_ckpt), "--source", str(video), option, value, "--quiet"])
    assert e.value.code == 2 and f"argument {option}: invalid choice: '{value}'" in capsys.readouterr().err


def test_show_without_display_is_a_clear_error(video, edge_ckpt, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(UserError, match="--show needs a display"):
        run_stream(video, edge_ckpt, show=True, progress=False)


def test_stream_demo_runs_on_the_bundled_video(tmp_path, capsys):
    """``examples/stream_demo.py`` without arguments: the bundled vic_edge on the bundled sample video."""
    import importlib.util

    from vidconv_edge.assets import sample_video

    path = Path(__file__).parents[1] / "examples" / "stream_demo.py"
    spec = importlib.util.spec_from_file_location("stream_demo", path)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    assert demo.main(["--out", str(tmp_path)]) == 0
    frames = len(decoded(sample_video()))
    lines = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(8, frames))
    assert len(decoded(tmp_path / "overlay.mp4")) == frames
    assert "frame    8" in capsys.readouterr().out


def test_bundled_sample_video():
    """Real footage (the held-out street shot) under four known camera motions, 12 frames each."""
    import importlib.util

    from vidconv_edge.assets import sample_video

    path = sample_video()
    assert path.stat().st_size < 500_000
    frames = decoded(path)
    assert len(frames) == 48 and frames[0].shape == (128, 128, 3)
    spec = importlib.util.spec_from_file_location("make_sample", Path(__file__).parents[1] / "scripts" / "make_sample_video.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    assert make.SEGMENTS == ("static", "pan_right", "zoom_in", "tilt_up") and make.FRAMES_PER_SEGMENT == 12
    from vidconv_edge.data.footage import track_camera

    moves = []
    for k in range(4):  # the camera's motion measured in each segment: the labels are true
        seg = np.stack(frames[12 * k : 12 * k + 12])
        m = track_camera(seg, [(0, 12)])[0][-1]
        moves.append((m[0, 2] + (m[0, 0] - 1) * 64, m[1, 2] + (m[1, 1] - 1) * 64, np.log(np.hypot(m[0, 0], m[1, 0]))))
    (sx, sy, ss), (px, py, ps), (zx, zy, zs), (tx, ty, ts) = moves
    assert max(abs(sx), abs(sy)) < 4 and abs(ss) < 0.03  # static
    assert px < -25 and abs(py) < 6  # pan_right: the scene slides left
    assert zs > 0.3  # zoom_in: the scene grows
    assert ty > 25 and abs(tx) < 6  # tilt_up: the scene slides down


def test_quantized_checkpoint_streams_bit_exact(tmp_path):
    """A Brevitas checkpoint runs in the torch backend (eagerly): streamed logits == the whole clip, exactly."""
    from vidconv_edge.quant.calibrate import calibrate
    from vidconv_edge.quant.model import quantize_model, save_quant_checkpoint

    torch.manual_seed(0)
    q = quantize_model(small_edge())
    clips = torch.randint(0, 256, (4, 9, 3, 64, 64), dtype=torch.uint8).float()
    calibrate(q, [clips[:2], clips[2:]], progress=False)
    save_quant_checkpoint(tmp_path / "q.pt", q, CLASSES)
    backend = TorchBackend.from_checkpoint(tmp_path / "q.pt")
    assert backend.net is backend.model and backend.model.input_is_uint8
    engine = StreamEngine(backend, recompute=True)
    frames = torch.randint(0, 256, (11, 3, 64, 64), dtype=torch.uint8).float().numpy()
    preds = [p for p in (engine.push(f, i, 0.0) for i, f in enumerate(frames)) if p]
    assert len(preds) == 3 and engine.max_abs_diff == 0.0
    with torch.no_grad():
        whole = backend.model(torch.from_numpy(frames[-9:])[None])[0].numpy()
    np.testing.assert_array_equal(preds[-1].logits, whole)


def test_fps_meter_over_its_last_frames(monkeypatch):
    import vidconv_edge.stream.run as run_module

    clock = iter([0.0, 0.5, 1.0, 1.5, 3.5])
    monkeypatch.setattr(run_module.time, "perf_counter", lambda: next(clock))
    meter = run_module._Fps(n=3)
    assert meter.tick() is None  # one frame: no rate yet
    assert meter.tick() == 2.0 and meter.tick() == 2.0
    assert meter.tick() == 2.0  # the window keeps the last 3 frames
    assert meter.tick() == 2 / 2.5
    assert run_module._Fps().n == 30


def test_overlay_text_of_a_prediction_and_a_softmax_that_never_overflows():
    from vidconv_edge.stream.engine import Prediction, softmax
    from vidconv_edge.stream.outputs import overlay_text

    pred = Prediction(5, 0.2, np.zeros(3), [("pan_left", 0.912), ("static", 0.05)])
    assert overlay_text(pred, (9, 9), None) == ["pan_left  91.2%"]
    assert overlay_text(pred, (9, 9), 29.96) == ["pan_left  91.2%", "30.0 fps"]
    p = softmax(np.array([1000.0, 0.0, 999.0]))
    np.testing.assert_allclose(p, [1 / (1 + np.exp(-1000) + np.exp(-1)), 0.0, np.exp(-1) / (1 + np.exp(-1))], rtol=1e-6)


@pytest.mark.parametrize("height,width", [(101, 203), (240, 320), (97, 97)])
def test_eval_crop_box_is_integer_and_inside_the_frame(height, width):
    from vidconv_edge.stream.preprocess import eval_crop_box

    y0, x0, h, w = eval_crop_box(height, width, 64)
    assert all(type(v) is int for v in (y0, x0, h, w))
    assert 0 <= y0 and 0 <= x0 and y0 + h <= height and x0 + w <= width
    short = min(height, width)
    assert abs(min(h, w) - short * 7 / 8) <= 1.5  # the evaluation crop: 64 of the short side resized to 73
    assert abs((y0 + h / 2) - height / 2) <= 2.5 and abs((x0 + w / 2) - width / 2) <= 2.5  # centred (floor offsets)


def test_eval_crop_box_of_a_320x240_frame():
    """Short side to 73 (320x240 -> 97x73), centre crop 64 at floor offsets (16, 4), mapped back (x 240/73)."""
    from vidconv_edge.stream.preprocess import eval_crop_box

    assert eval_crop_box(240, 320, 64) == (13, 53, 210, 210)
