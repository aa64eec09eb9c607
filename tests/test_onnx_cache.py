"""`stream --backend onnxruntime` on a checkpoint: the ONNX parts are exported once, cached by content, and used."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from vidconv_edge.assets import default_checkpoint, sample_video
from vidconv_edge.checkpoint import save_checkpoint
from vidconv_edge.cli import main
from vidconv_edge.export.onnx import read_metadata
from vidconv_edge.models import create_model
from vidconv_edge.stream import run_stream
from vidconv_edge.stream.backends import onnx_cache
from vidconv_edge.stream.backends.onnx_cache import cache_root, cached_parts, content_key


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDCONV_EDGE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _predictions(model, backend: str, recompute: bool = False) -> tuple[list, dict]:
    preds = []
    summary = run_stream(sample_video(), model, backend=backend, recompute=recompute, progress=False,
                         on_prediction=preds.append)  # fmt: skip
    return preds, summary


def test_ort_stream_of_a_checkpoint_equals_torch_and_reuses_the_cache(cache, monkeypatch, capsys):
    ref, _ = _predictions(None, "torch")
    got, summary = _predictions(None, "onnxruntime", recompute=True)  # the default checkpoint
    assert summary["backend"] == "onnxruntime" and summary["max_abs_diff"] < 1e-4
    assert [p.top[0][0] for p in got] == [p.top[0][0] for p in ref] and len(got) == len(ref) > 0
    assert np.abs(np.stack([p.logits for p in got]) - np.stack([p.logits for p in ref])).max() < 1e-4
    folder = cache / "onnx" / content_key(default_checkpoint())
    assert sorted(f.name for f in folder.iterdir()) == ["early.onnx", "full.onnx", "later.onnx"]
    assert read_metadata(folder / "later.onnx")["part"] == "later"
    assert f"exported the ONNX parts of {default_checkpoint()} to {folder}" in capsys.readouterr().err

    def no_export(*_):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_cache, "export_parts", no_export)
    assert cached_parts(default_checkpoint()) == folder
    assert main(["stream", "--source", "sample", "--backend", "onnxruntime", "--quiet", "--json"]) == 0
    assert '"backend": "onnxruntime"' in capsys.readouterr().out


def test_cache_key_is_the_content_and_the_folder_follows_the_environment(tmp_path, monkeypatch):
    for seed, name in ((0, "one.pt"), (1, "other.pt")):
        torch.manual_seed(seed)
        save_checkpoint(tmp_path / name, create_model("vic_edge", num_classes=2), ["a", "b"])
    shutil.copy(tmp_path / "one.pt", tmp_path / "same.pt")  # another path, the same content
    one, same, other = (content_key(tmp_path / n) for n in ("one.pt", "same.pt", "other.pt"))
    assert one == same != other and len(one) == 64
    version = onnx_cache.PARTS_VERSION
    monkeypatch.setattr(onnx_cache, "PARTS_VERSION", version + 1)  # a new export format: a new folder
    assert content_key(tmp_path / "one.pt") not in (one, other)
    monkeypatch.setattr(onnx_cache, "PARTS_VERSION", version)
    assert cached_parts(tmp_path / "one.pt") == cached_parts(tmp_path / "same.pt") != cached_parts(tmp_path / "other.pt")

    monkeypatch.delenv("VIDCONV_EDGE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "vidconv-edge"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "vidconv-edge"


def test_failed_export_leaves_no_folder(cache, tmp_path, capsys):
    (tmp_path / "bad.pt").write_bytes(b"junk")
    assert main(["stream", str(tmp_path / "bad.pt"), "--source", "sample", "--backend", "onnxruntime"]) == 2
    assert "not a valid PyTorch file" in capsys.readouterr().err
    assert list((cache / "onnx").iterdir()) == []


def test_another_process_exporting_the_same_content_first_is_kept(cache, tmp_path, monkeypatch):
    """``atomic_folder(exist_ok=True)``: when the folder appears while we export, theirs stays, ours is dropped."""
    save_checkpoint(tmp_path / "m.pt", create_model("vic_edge", num_classes=2), ["a", "b"])
    folder = cache / "onnx" / content_key(tmp_path / "m.pt")

    def racing_export(checkpoint, out):
        for part in onnx_cache.PARTS:
            (out / f"{part}.onnx").write_text("ours")
        folder.mkdir(parents=True)  # the other process renames its complete folder in the meantime
        for part in onnx_cache.PARTS:
            (folder / f"{part}.onnx").write_text("theirs")

    monkeypatch.setattr(onnx_cache, "export_parts", racing_export)
    assert cached_parts(tmp_path / "m.pt") == folder
    assert {f.read_text() for f in folder.iterdir()} == {"theirs"}
    assert [p.name for p in (cache / "onnx").iterdir()] == [folder.name]  # no temp folder left
