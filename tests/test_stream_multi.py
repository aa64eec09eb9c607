"""Several sources on one backend: a ring per source, fair interleaving, per-source JSONL / overlays / summary,
outputs equal to single-source runs, a slow or dead source never stalls the others."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch

from test_stream import CLASSES, decoded, small_edge, write_video
from vidconv_edge.checkpoint import save_checkpoint
from vidconv_edge.cli import main as cli_main
from vidconv_edge.errors import UserError
from vidconv_edge.stream import open_backend, run_stream, run_streams
from vidconv_edge.stream.multi import overlay_paths
from vidconv_edge.stream.sources import Frame, Source


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "edge.pt"
    torch.manual_seed(0)
    save_checkpoint(path, small_edge(), CLASSES)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    return [write_video(root / "a.mp4", frames=14), write_video(root / "b.mp4", frames=20, height=64, width=96)]


def single(video, ckpt) -> list[tuple[int, np.ndarray]]:
    preds = []
    run_stream(video, ckpt, progress=False, on_prediction=lambda p: preds.append((p.frame, p.logits.copy())))
    return preds


def test_each_source_equals_its_single_source_run_and_lines_carry_the_source(videos, ckpt, tmp_path):
    got: dict[str, list] = {}
    summary = run_streams(videos, ckpt, jsonl=tmp_path / "out.jsonl", overlay=tmp_path / "ov.mp4", progress=False,
                          on_prediction=lambda s, p: got.setdefault(s, []).append((p.frame, p.logits.copy())))  # fmt: skip
    for video in videos:
        alone = single(video, ckpt)
        mine = got[str(video)]
        assert [f for f, _ in mine] == [f for f, _ in alone]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(mine, alone))  # bit for bit
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert {ln["source"] for ln in lines} == {str(v) for v in videos}
    assert sum(ln["source"] == str(videos[0]) for ln in lines) == 14 - 8 and len(lines) == (14 - 8) + (20 - 8)
    assert list(lines[0])[0] == "source"
    # fair interleaving: both sources appear among the first outputs, not one after the other
    first = [ln["source"] for ln in lines[:6]]
    assert len(set(first)) == 2
    per = {s["source"]: s for s in summary["sources"]}
    assert per[str(videos[0])]["frames_in"] == 14 and per[str(videos[1])]["outputs"] == 12
    assert all(s["latency_ms_p95"] >= s["latency_ms_p50"] > 0 and s["error"] is None for s in summary["sources"])
    assert summary["total"]["frames_in"] == 34 and summary["total"]["outputs"] == 18 and summary["total"]["fps"] > 0
    paths = overlay_paths(tmp_path / "ov.mp4", 2)
    assert [p.name for p in paths] == ["ov-0.mp4", "ov-1.mp4"]
    assert len(decoded(paths[0])) == 14 and len(decoded(paths[1])) == 20
    assert [s["overlay"] for s in summary["sources"]] == [str(p) for p in paths]


class _Scripted(Source):
    """A source of ``n`` frames of the test video, optionally slow or failing after ``fail_at`` frames."""

    def __init__(self, name: str, frames: list[np.ndarray], delay: float = 0.0, fail_at: int | None = None):
        self.name, self._frames, self.delay, self.fail_at = name, frames, delay, fail_at
        self.fps, self.total = 10.0, len(frames)
        self.started = threading.Event()

    def frames(self):
        for i, img in enumerate(self._frames):
            if self.fail_at is not None and i == self.fail_at:
                raise OSError("camera unplugged")
            time.sleep(self.delay)
            yield Frame(i, i / 10, img)


def test_a_slow_or_dead_source_never_stalls_the_others(videos, ckpt):
    frames = decoded(videos[0])
    fast = _Scripted("fast", frames)
    slow = _Scripted("slow", frames[:10], delay=0.15)
    dead = _Scripted("dead", frames, fail_at=9)
    order: list[str] = []
    t0 = time.perf_counter()
    summary = run_streams([fast, slow, dead], ckpt, progress=False, names=["fast", "slow", "dead"],
                          on_prediction=lambda s, p: order.append(s))  # fmt: skip
    per = {s["source"]: s for s in summary["sources"]}
    assert per["fast"]["outputs"] == 14 - 8 and per["fast"]["error"] is None
    assert per["dead"]["frames_in"] == 9 and "camera unplugged" in per["dead"]["error"]
    assert per["slow"]["outputs"] == 10 - 8 and summary["total"]["failed"] == ["dead"]
    assert order.index("slow") > max(i for i, s in enumerate(order) if s == "fast")  # fast finished first
    assert time.perf_counter() - t0 < 10 * 0.15 + 5


def test_sources_are_checked_before_anything_starts(videos, ckpt, tmp_path):
    with pytest.raises(UserError, match="missing.mp4"):
        run_streams([videos[0], tmp_path / "missing.mp4"], ckpt, progress=False)
    with pytest.raises(UserError, match="given twice"):
        run_streams([videos[0], videos[0]], ckpt, progress=False)


def test_cli_several_sources(videos, ckpt, tmp_path, capsys):
    args = ["stream", str(ckpt), "--source", str(videos[0]), "--source", str(videos[1]), "--quiet",
            "--jsonl", str(tmp_path / "o.jsonl"), "--summary-json", str(tmp_path / "s.json")]  # fmt: skip
    assert cli_main(args) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert [s["source"] for s in summary["sources"]] == [str(videos[0]), str(videos[1])]
    out = capsys.readouterr().out
    assert "total" in out and "outputs" in out
    assert cli_main(["stream", str(ckpt), "--source", str(videos[0]), "--source", str(videos[1]), "--show"]) == 2
    assert "--show takes one source" in capsys.readouterr().err


def test_one_backend_serves_all_sources(videos, ckpt, monkeypatch):
    """One model / accelerator: the backend is opened once and every engine calls the same object."""
    backend = open_backend(ckpt)
    calls = {"early": 0}
    early = backend.early

    def counting(frames):
        calls["early"] += 1
        return early(frames)

    monkeypatch.setattr(backend, "early", counting)
    summary = run_streams(videos, backend, progress=False)
    assert calls["early"] == summary["total"]["frames_in"] == 34


def test_summary_fields_and_units(videos, ckpt, tmp_path):
    summary = run_streams(videos, ckpt, jsonl=tmp_path / "o.jsonl", progress=False)
    assert set(summary) == {"backend", "model", "sources", "total", "elapsed_s", "interrupted", "jsonl"}
    assert summary["jsonl"] == str(tmp_path / "o.jsonl") and summary["interrupted"] is False
    assert run_streams(videos[:1], ckpt, progress=False)["jsonl"] is None
    for s in summary["sources"]:
        assert set(s) == {"source", "frames_in", "frames_dropped", "frames_corrupt", "outputs", "fps", "latency_ms_p50",
                          "latency_ms_p95", "error", "overlay", "frame_step", "source_fps", "model_frame_rate",
                          "frame_step_auto"}  # fmt: skip
        assert s["frames_dropped"] == s["frames_corrupt"] == 0 and s["overlay"] is None
        assert s["frame_step"] == 1 and s["frame_step_auto"] and s["model_frame_rate"] is None  # no rate recorded
        assert s["fps"] == round(s["fps"], 2) >= s["frames_in"] / summary["elapsed_s"]  # over the source's own span
        # milliseconds: one inference of the small model takes more than 0.05 ms and less than the whole run
        assert 0.05 < s["latency_ms_p50"] <= s["latency_ms_p95"] < 1e3 * summary["elapsed_s"]
    total = summary["total"]
    assert total["fps"] == round(total["fps"], 2) > 0 and total["frames_dropped"] == 0 and total["failed"] == []
    assert total["fps"] == pytest.approx(total["frames_in"] / summary["elapsed_s"], rel=0.01)
    host = total["host_ms_per_frame"]
    assert set(host) == {"decode", "resize"} and all(0 < v < 1e3 * summary["elapsed_s"] for v in host.values())


def test_ctrl_c_ends_the_run_and_keeps_what_was_written(videos, ckpt, tmp_path):
    seen = []

    def stop_after_three(source, pred):
        seen.append(source)
        if len(seen) == 3:
            raise KeyboardInterrupt

    summary = run_streams(videos, ckpt, jsonl=tmp_path / "o.jsonl", overlay=tmp_path / "ov.mp4", progress=False,
                          on_prediction=stop_after_three)  # fmt: skip
    assert summary["interrupted"] is True and summary["total"]["outputs"] == 3
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 3
    written = [s["overlay"] for s in summary["sources"]]
    assert written == [str(p) for p in overlay_paths(tmp_path / "ov.mp4", 2)]
    counts = [len(decoded(p)) for p in written]  # every frame served, but the one whose output was interrupted
    assert all(counts) and sum(counts) == summary["total"]["frames_in"] - 1


def test_summary_table_shows_every_source_its_error_and_the_failed_total():
    from rich.console import Console

    from vidconv_edge.stream.multi import print_multi_summary

    row = {"frames_in": 9, "outputs": 1, "frames_dropped": 4, "fps": 12.345, "latency_ms_p50": 1.5, "latency_ms_p95": 2.25}
    summary = {
        "model": "vic_edge", "backend": "torch", "elapsed_s": 3.21,
        "sources": [{"source": "cam-a", **row, "frame_step": 2, "error": None},
                    {"source": "cam-b", **row, "frame_step": 1, "fps": None, "latency_ms_p50": None, "error": "OSError: unplugged"}],
        "total": {**row, "frames_in": 18, "failed": ["cam-b"]},
    }  # fmt: skip
    console = Console(record=True, width=200)
    print_multi_summary(summary, console)
    text = console.export_text()
    assert "stream summary: vic_edge on torch, 3.2 s" in text
    header = next(line for line in text.splitlines() if "source" in line)
    assert [c.strip() for c in header.strip("┃│ ").split("┃") if c.strip()] == [
        "source", "frames", "step", "outputs", "dropped", "fps", "latency p50 / p95 ms", "error"]  # fmt: skip
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in text.splitlines() if line.count("│") == 9}  # fmt: skip
    assert rows["cam-a"] == ["9", "2", "1", "4", "12.3", "1.50 / 2.25", ""]
    assert rows["cam-b"] == ["9", "1", "1", "4", "-", "-", "OSError: unplugged"]
    assert rows["total"] == ["18", "", "1", "4", "12.3", "1.50 / 2.25", "cam-b"]
    line_a = next(line for line in text.splitlines() if "cam-a" in line)
    assert line_a.split("│")[2].endswith("9 ") and line_a.split("│")[1].startswith(" cam-a")  # numbers right, names left


def test_a_failing_run_leaves_no_jsonl_and_no_overlay(videos, ckpt, tmp_path):
    def fail(source, pred):
        raise RuntimeError("the consumer broke")

    with pytest.raises(RuntimeError, match="the consumer broke"):
        run_streams(videos, ckpt, jsonl=tmp_path / "o.jsonl", overlay=tmp_path / "ov.mp4", progress=False,
                    on_prediction=fail)  # fmt: skip
    assert list(tmp_path.iterdir()) == []
