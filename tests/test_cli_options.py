"""create_model's user errors (and only those), CLI choices from the package constants, one natural file order."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidconv_edge.cli import main
from vidconv_edge.errors import UserError
from vidconv_edge.models import create_model
from vidconv_edge.models import registry


def test_create_model_user_errors_are_about_the_options():
    with pytest.raises(UserError, match=r"unknown option\(s\) \['nope'\]"):
        create_model("vic_edge", nope=1)
    with pytest.raises(UserError, match="option depths must be a list"):
        create_model("vic_edge", depths=3)
    with pytest.raises(UserError, match="option mean must be a list"):
        create_model("sevnet_edge", mean="0.5")


def test_create_model_keeps_real_bugs(monkeypatch):
    def buggy(**kwargs):
        return None + 1  # a TypeError inside construction: a bug, not bad input

    def fixed(depth: int = 1):
        raise AssertionError("not called with a keyword it does not take")

    entry = registry.get_entry("vic_edge")
    monkeypatch.setitem(registry._REGISTRY, "vic_edge", registry.ModelEntry("vic_edge", buggy, entry.family, ""))
    with pytest.raises(TypeError, match="unsupported operand"):
        create_model("vic_edge")
    monkeypatch.setitem(registry._REGISTRY, "vic_edge", registry.ModelEntry("vic_edge", fixed, entry.family, ""))
    with pytest.raises(UserError, match="model 'vic_edge': got an unexpected keyword argument 'width'"):
        create_model("vic_edge", width=2)


@pytest.mark.parametrize("option,value,choices", [("--backend", "tensorrt", "'torch', 'onnxruntime', 'finn-sim', 'pynq'"),
                                                  ("--pad", "last", "'none', 'first'")])  # fmt: skip
def test_stream_choices_come_from_the_package(capsys, option, value, choices):
    from vidconv_edge.stream.backends import BACKENDS
    from vidconv_edge.stream.engine import PAD_POLICIES

    assert ", ".join(f"'{c}'" for c in (BACKENDS if option == "--backend" else PAD_POLICIES)) == choices
    with pytest.raises(SystemExit) as e:
        main(["stream", "--source", "sample", option, value])
    assert e.value.code == 2 and f"invalid choice: '{value}' (choose from {choices})" in capsys.readouterr().err


def test_frame_folders_in_one_natural_order(tmp_path):
    import numpy as np
    from PIL import Image

    from vidconv_edge.data.decode import read_frames
    from vidconv_edge.naming import natural_key
    from vidconv_edge.stream.sources import FolderSource

    names = ["frame10.png", "frame2.png", "frame1.png"]
    assert sorted((Path(n) for n in names), key=natural_key) == [Path("frame1.png"), Path("frame2.png"), Path("frame10.png")]
    for n in names:
        value = int(n[5:-4])
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(tmp_path / n)
    assert read_frames(tmp_path, [0, 1, 2])[:, 0, 0, 0].tolist() == [1, 2, 10]
    source = FolderSource(tmp_path)
    source.open()
    assert [int(f.image[0, 0, 0]) for f in source.frames()] == [1, 2, 10]
