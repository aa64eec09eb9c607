"""Progress: bars on a terminal; in a log file plain lines (no carriage return), one per epoch / step; --quiet: none."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vidconv_edge import progress
from vidconv_edge.progress import bar, write


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_one_plain_line_per_loop():
    log = io.StringIO()
    items = list(bar(range(3), desc="calibrate", unit="batch", stream=log))
    assert items == [0, 1, 2]
    p = bar(desc="stream", unit="frame", stream=log)
    for _ in range(5):
        p.update()
    p.set_postfix(loss="0.123")
    p.close()
    p.close()  # once only
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 2
    assert lines[0].startswith("calibrate: 3/3 batch in ") and lines[0].endswith("done")
    assert lines[1].startswith("stream: 5 frame in ") and lines[1].endswith("done  loss 0.123")


def test_long_loops_log_a_line_now_and_then(monkeypatch):
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    log = io.StringIO()
    list(bar(range(2), desc="epoch 1/2", unit="batch", done_line=False, stream=log))
    assert [line.split(" in ")[0] for line in log.getvalue().splitlines()] == ["epoch 1/2: 1/2 batch", "epoch 1/2: 2/2 batch"]


def test_disabled_or_without_done_line_prints_nothing():
    log = io.StringIO()
    assert list(bar(range(3), desc="x", enabled=False, stream=log)) == [0, 1, 2]
    list(bar(range(3), desc="x", done_line=False, stream=log))
    write("epoch 1/1", enabled=False, stream=log)
    assert log.getvalue() == ""
    write("epoch 1/1", stream=log)
    assert log.getvalue() == "epoch 1/1\n"


def test_on_a_terminal_a_bar():
    tty = Terminal()
    list(bar(range(3), desc="calibrate", unit="batch", stream=tty))
    assert "\r" in tty.getvalue() and "calibrate" in tty.getvalue()


def _cli_to_file(tmp_path: Path, name: str, *argv) -> str:
    """Run the CLI (this worktree's package, via PYTHONPATH) with stdout and stderr redirected to one file."""
    log = tmp_path / f"{name}.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    with open(log, "w") as f:
        code = subprocess.run([sys.executable, "-m", "vidconv_edge.cli", *map(str, argv)], stdout=f, stderr=f, env=env,
                              timeout=600).returncode  # fmt: skip
    text = log.read_text()
    assert code == 0, text
    assert "\r" not in text
    return text


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    from vidconv_edge.data import write_synthetic_dataset

    root = tmp_path_factory.mktemp("progress")
    data = write_synthetic_dataset(root / "data", per_class=2, frames=12, size=32, classes=["grow", "shrink"], progress=False)
    config = root / "tiny.yaml"
    config.write_text("model: {img_size: 32}\ndata: {stride_range: [1, 1], test_stride: 1}\n"
                      "train: {batch_size: 2, step_batch_size: 2, workers: 0}\n")  # fmt: skip
    return data, config


def test_train_and_synth_in_a_log_file(tiny, tmp_path):
    data, config = tiny
    args = ("train", "--model", "vic_edge", "--data", data, "--config", config, "--epochs", "2")
    text = _cli_to_file(tmp_path, "train", *args, "--out", tmp_path / "run")
    epochs = [line for line in text.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2"] and all("val loss" in line for line in epochs)
    quiet = _cli_to_file(tmp_path, "train-quiet", *args, "--out", tmp_path / "run-quiet", "--quiet")
    assert "epoch" not in quiet and "batch" not in quiet

    synth = ("synth", "--per-class", "2", "--frames", "6", "--size", "32", "--classes", "grow,shrink")
    text = _cli_to_file(tmp_path, "synth", *synth, tmp_path / "s")
    assert any(line.startswith("synth s: 4/4 video in ") and line.endswith("done") for line in text.splitlines()), text
    assert "video in" not in _cli_to_file(tmp_path, "synth-quiet", *synth, tmp_path / "q", "--quiet")


def test_stream_progress_line_and_quiet(capsys):
    from vidconv_edge.cli import main

    assert main(["stream", "--source", "sample"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and any(line.startswith("stream: 48/48 frame in ") for line in err.splitlines())
    assert main(["stream", "--source", "sample", "--quiet"]) == 0
    assert "frame in" not in capsys.readouterr().err
