"""The command line of the foundation: models, info, export; bad input -> one message, exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import onnx
import pytest
import torch

from vidconv_edge.checkpoint import save_checkpoint
from vidconv_edge.cli import main
from vidconv_edge.export.onnx import read_metadata
from vidconv_edge.models import create_model, list_models


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_lists_every_model(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    for entry in list_models():
        assert entry.name in out


def test_info_json(capsys):
    code, out, _ = run(capsys, "info", "sevnet_g8", "--num-classes", "400", "--frames", "8", "--size", "128", "--json")
    assert code == 0
    info = json.loads(out)
    model = create_model("sevnet_g8", num_classes=400, frames=8, img_size=128)
    assert info["params"] == sum(p.numel() for p in model.parameters())
    assert info["params"] == 4_543_600 and info["macs"] == 2_358_190_080
    assert info["input_shape"] == [1, 8, 3, 128, 128]
    assert sum(s["macs"] for s in info["stages"]) == info["macs"]


def test_info_table_and_set_option(capsys):
    code, out, _ = run(capsys, "info", "vic_tiny", "--set", "neck_dim=0", "--size", "64")
    assert code == 0
    assert "stage3 (later)" in out and "neck" not in out.split("stage4")[1].split("head")[0]
    assert "per new frame" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (("info", "vic_huge"), "unknown model 'vic_huge'"),
        (("info", "vic_tiny", "--size", "100"), "multiple of 32"),
        (("info", "vic_tiny", "--frames", "5"), "5 frames cannot be laid out"),
        (("export", "missing.pt", "-o", "x.onnx"), "checkpoint not found"),
    ],
)
def test_bad_input_exits_2_with_one_message(tmp_path, argv, message):
    """The console script itself (a subprocess, this worktree's code): one line on stderr, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run([shutil.which("vidconv-edge"), *argv], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0, r.stderr


def test_export_checkpoint_all_parts(capsys, tmp_path):
    model = create_model("vic_edge", num_classes=3)
    ckpt = save_checkpoint(tmp_path / "m.pt", model, class_names=["x", "y", "z"])
    for part in ("full", "early", "later"):
        code, out, _ = run(capsys, "export", str(ckpt), "--target", "onnx", "--part", part, "-o", str(tmp_path / f"{part}.onnx"))
        assert code == 0, out
        assert "plain 2D: yes" in out and "Conv" in out
        assert read_metadata(tmp_path / f"{part}.onnx")["class_names"] == ["x", "y", "z"]
    onnx.checker.check_model(onnx.load(str(tmp_path / "full.onnx")))


def test_export_default_model(capsys, tmp_path):
    code, out, _ = run(capsys, "export", "-o", str(tmp_path / "d.onnx"))
    assert code == 0
    assert read_metadata(tmp_path / "d.onnx")["model"] == "vic_edge"


def test_corrupt_checkpoint_and_unwritable_output(capsys, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    code, _, err = run(capsys, "export", str(bad), "-o", str(tmp_path / "o.onnx"))
    assert code == 2 and "cannot read checkpoint" in err
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    code, _, err = run(capsys, "export", str(tmp_path / "foreign.pt"), "-o", str(tmp_path / "o.onnx"))
    assert code == 2 and "not a vidconv-edge checkpoint" in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run(capsys, "export", "vic_edge", "-o", str(blocker / "sub" / "o.onnx"))
    assert code == 2 and "cannot write" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt", "file", "foreign.pt"]


def test_mismatched_checkpoint(capsys, tmp_path):
    ckpt = save_checkpoint(tmp_path / "m.pt", create_model("vic_edge"))
    code, _, err = run(capsys, "export", str(ckpt), "--set", "dims=[8,16,32,64]", "-o", str(tmp_path / "o.onnx"))
    assert code == 2 and "do not match" in err


def _quant_checkpoint(tmp_path):
    from brevitas.graph.calibrate import calibration_mode

    from vidconv_edge.quant.model import quantize_model, save_quant_checkpoint

    model = create_model("vic_edge", img_size=64, num_classes=4)
    q = quantize_model(model).eval()
    with torch.no_grad(), calibration_mode(q):
        q(torch.randint(0, 256, (2, 9, 3, 64, 64)).float())
    return save_quant_checkpoint(tmp_path / "q.pt", q, ["a", "b", "c", "d"]), q


@pytest.mark.parametrize("target", ["qonnx", "qdq"])
def test_export_quantized_targets(capsys, tmp_path, target):
    from vidconv_edge.export.qdq import run_ort
    from vidconv_edge.export.qonnx import run_qonnx

    ckpt, q = _quant_checkpoint(tmp_path)
    out = tmp_path / f"{target}.onnx"
    code, text, err = run(capsys, "export", str(ckpt), "--target", target, "--part", "early", "-o", str(out))
    assert code == 0, err
    assert read_metadata(out)["class_names"] == ["a", "b", "c", "d"]
    frame = torch.randint(0, 256, (1, 3, 64, 64)).float()
    with torch.no_grad():
        ref = q.forward_early(frame).numpy()
    got = run_qonnx(out, frame.numpy()) if target == "qonnx" else run_ort(out, frame.numpy(), optimize=False)
    assert abs(got - ref).max() <= 1e-5


def test_export_target_checks_checkpoint_kind(capsys, tmp_path):
    ckpt, _ = _quant_checkpoint(tmp_path)
    code, _, err = run(capsys, "export", str(ckpt), "--target", "onnx", "-o", str(tmp_path / "o.onnx"))
    assert code == 2 and "quantized checkpoint" in err
    float_ckpt = save_checkpoint(tmp_path / "f.pt", create_model("vic_edge"))
    code, _, err = run(capsys, "export", str(float_ckpt), "--target", "qonnx", "-o", str(tmp_path / "o.onnx"))
    assert code == 2 and "float checkpoint" in err
    code, _, err = run(capsys, "export", str(float_ckpt), "--target", "qdq", "-o", str(tmp_path / "o.onnx"))
    assert code == 2 and "--calib-data" in err
    assert not (tmp_path / "o.onnx").exists()
