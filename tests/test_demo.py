"""`vidconv-edge demo --quick` end to end on the bundled default: every artifact it claims is real."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from vidconv_edge.assets import sample_video
from vidconv_edge.cli import main
from vidconv_edge.data import video_info
from vidconv_edge.demo import parse_steps
from vidconv_edge.errors import UserError


@pytest.mark.slow
def test_demo_quick_writes_what_it_claims(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == ["model", "export", "quantize", "fpga", "stream"]
    arts = {k: Path(v) for k, v in summary["artifacts"].items()}
    assert all(p.is_file() for p in arts.values()), arts

    import onnxruntime as ort

    for key in ("onnx_full", "onnx_early", "onnx_later", "int8_full", "int8_early", "int8_later"):
        onnx.checker.check_model(onnx.load(str(arts[key])))
        sess = ort.InferenceSession(str(arts[key]), providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        assert np.isfinite(sess.run(None, {inp.name: np.zeros(inp.shape, np.float32)})[0]).all()

    report = json.loads(arts["fpga_report"].read_text())
    assert report["board"] == "pynq-z2" and report["verified"] is True
    assert {"LUT", "BRAM_18K", "DSP"} <= set(report["total"])

    res = summary["results"]
    assert res["export"]["ort_vs_torch_max_abs"] <= 1e-4
    frames = video_info(arts["stream_overlay"]).num_frames
    assert frames == res["stream"]["frames"] == video_info(sample_video()).num_frames
    lines = [json.loads(line) for line in arts["stream_jsonl"].read_text().splitlines()]
    assert len(lines) == res["stream"]["outputs"] == frames - 8  # 9-frame window, stride 1
    assert [d["frame"] for d in lines] == list(range(8, frames))
    assert all(len(d["logits"]) == 7 and d["top"] for d in lines)  # the 7 camera-motion classes
    assert res["stream"]["max_abs_diff_vs_recompute"] == 0
    assert "vidconv-edge demo" in capsys.readouterr().out


def test_demo_steps_and_errors(tmp_path, capsys):
    assert parse_steps("stream,model") == ("model", "stream")
    with pytest.raises(UserError, match="unknown demo step"):
        parse_steps("model,bake")
    code = main(["demo", "--steps", "model", "--source", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "d")])
    assert code == 2 and "video not found" in capsys.readouterr().err


def test_demo_failing_step_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    code = main(["demo", "--steps", "model", "--checkpoint", str(bad), "--out", str(tmp_path / "d")])
    assert code == 2 and "step 'model' failed" in capsys.readouterr().err
