"""Tables never cut a name or number at any width (piped output), and every table command has --json."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console
from rich.table import Table

from vidconv_edge.cli import main
from vidconv_edge.tables import TableConsole, print_table

WIDTHS = (40, 80)


def _console(width: int, cls=Console) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return cls(file=buf, width=width, force_terminal=False), buf


def _words(*cells: str) -> set[str]:
    return {w for c in cells for w in c.split()}


def _assert_whole(text: str, words: set[str]) -> None:
    assert "…" not in text
    found = set(text.split()) | {w.strip("│┃") for w in text.split()}
    missing = {w for w in words if w not in found}
    assert not missing, f"cut or missing: {sorted(missing)}\n{text}"


def _run(capsys, monkeypatch, width: int, *argv) -> str:
    monkeypatch.setenv("COLUMNS", str(width))
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.mark.parametrize("width", (30, 40, 80, 200))
def test_print_table_keeps_every_word_whole(width):
    rows = [("xczu7ev-ffvc1156-2-e", "1,728,000", "a long description that can wrap between its words"),
            ("pynq-z2", "53,200", "short")]  # fmt: skip
    table = Table(title="boards")
    for col in ("board", "LUT", "note"):
        table.add_column(col, no_wrap=col == "LUT")
    for row in rows:
        table.add_row(*row)
    console, buf = _console(width)
    print_table(table, console)
    text = buf.getvalue()
    _assert_whole(text, _words(*(c for r in rows for c in r)))
    assert max(len(line) for line in text.splitlines()) <= width
    if width >= 80:  # room for the grid
        assert "┃ board" in text
    else:  # one block per row
        assert "  LUT: 1,728,000" in text


def test_table_console_lays_out_tables_and_prints_the_rest():
    table = Table("layer", "LUT")
    table.add_row("MVAU_hls_0_very_long_layer_name", "12345.5")
    console, buf = _console(32, TableConsole)
    console.print(table)
    console.print("[b]plain[/b] text")
    assert buf.getvalue().splitlines() == ["MVAU_hls_0_very_long_layer_name", "  LUT: 12345.5", "plain text"]


@pytest.mark.parametrize("width", WIDTHS)
def test_models_and_boards_whole_at_any_width(capsys, monkeypatch, width):
    from vidconv_edge.hw.boards import list_boards
    from vidconv_edge.models import list_models

    _assert_whole(_run(capsys, monkeypatch, width, "models"), {e.name for e in list_models()})
    boards = list_boards()
    numbers = {f"{b.lut:,}" for b in boards} | {f"{b.ff:,}" for b in boards} | {f"{b.dsp:,}" for b in boards}
    _assert_whole(_run(capsys, monkeypatch, width, "boards"), {b.name for b in boards} | {b.part for b in boards} | numbers)


@pytest.mark.parametrize("width", WIDTHS)
def test_info_whole_at_any_width(capsys, monkeypatch, width):
    out = _run(capsys, monkeypatch, width, "info", "vic_edge")
    prof = json.loads(_run(capsys, monkeypatch, width, "info", "vic_edge", "--json"))
    _assert_whole(out, {f"{s['params'] / 1e6:.3f}M" for s in prof["stages"]} | {f"{s['macs'] / 1e9:.3f}G" for s in prof["stages"]})


def test_models_and_boards_json(capsys, monkeypatch):
    from vidconv_edge.hw.boards import list_boards
    from vidconv_edge.models import list_models

    got = json.loads(_run(capsys, monkeypatch, 40, "models", "--json"))
    assert got == [{"name": e.name, "family": e.family, "description": e.description} for e in list_models()]
    got = json.loads(_run(capsys, monkeypatch, 40, "boards", "--json"))
    assert got == {b.name: b.to_dict() for b in list_boards()}


@pytest.mark.parametrize("width", WIDTHS)
def test_report_printers_whole_at_any_width(capsys, monkeypatch, width):
    """The printers of eval, quantize (--report, --mixes), stream (one and several sources) and demo."""
    from vidconv_edge.commands.train import _print_eval
    from vidconv_edge.demo import _print_summary
    from vidconv_edge.quant.mixes import print_mixes
    from vidconv_edge.quant.report import print_layer_report
    from vidconv_edge.stream.multi import print_multi_summary
    from vidconv_edge.stream.run import print_summary

    monkeypatch.setenv("COLUMNS", str(width))
    names = ["static", "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out"]
    _print_eval({"model": "vic_edge", "precision": "W8A4", "backend": "onnxruntime", "num_samples": 140, "views": "1x1",
                 "order": "normal", "top1": 0.9357, "top5": 1.0, "mean_class_acc": 0.9286, "loss": 0.2468,
                 "confusion": [[17 + i if j == i else 1 for j in range(7)] for i in range(7)]}, names)  # fmt: skip
    eval_words = {"93.57%", "92.86%", "0.2468", "pan_right", "tilt_down", "23"}
    print_layer_report([{"layer": "later.stages.3.blocks.0.dwconv", "type": "QuantConv2d", "part": "later",
                         "sqnr_db": 23.5, "rel_rmse": 0.0671, "max_abs": 0.1234, "cosine": 0.9977}])  # fmt: skip
    layer_words = {"later.stages.3.blocks.0.dwconv", "QuantConv2d", "23.5", "0.0671", "0.1234", "0.9977"}
    row = {"mix": "W8A8-W4A2", "early": {"weight": 8, "act": 8}, "later": {"weight": 4, "act": 2}, "ptq_top1": 0.8571,
           "qat_top1": None, "top1": 0.8571, "seconds": 123.0}  # fmt: skip
    print_mixes({"val_videos": 28, "float_top1": 0.9643, "rows": [row]}, "/tmp/mixes-out")
    mix_words = {"W8A8-W4A2", "W4A2", "85.71%", "96.43%", "-10.72", "123s"}
    print_summary({"model": "vic_edge", "backend": "onnxruntime", "frames_in": 1234, "early_ms_p50": 1.2345})
    lane = {"source": "rtsp://cam-north.example/s1", "frames_in": 4321, "outputs": 4313,
            "frames_dropped": 0, "fps": 29.9, "latency_ms_p50": 12.34, "latency_ms_p95": 56.78, "error": None}  # fmt: skip
    total = {**lane, "failed": []}
    print_multi_summary({"model": "vic_edge", "backend": "torch", "elapsed_s": 144.2, "sources": [lane], "total": total})
    stream_words = {"1234", "1.23", "rtsp://cam-north.example/s1", "4321", "4313", "29.9", "12.34", "56.78"}
    _print_summary(Console(), {"steps": ["quantize"], "seconds": {"quantize": 18.2},
                               "results": {"quantize": {"float_top1": 0.9643, "int8_top1": 0.9286}}, "artifacts": {}})  # fmt: skip
    out = capsys.readouterr().out
    _assert_whole(out, eval_words | layer_words | mix_words | stream_words | {"18.2"})
    assert "float_top1=0.9643" in out


def test_build_report_tables_whole_through_table_console():
    from vidconv_edge.hw.report import print_report

    layers = [{"layer": f"ConvolutionInputGenerator_rtl_{i}", "LUT": 1234.5, "BRAM_18K": 2.0, "URAM": 0.0, "DSP": 1.0,
               "cycles": 123456} for i in range(2)]  # fmt: skip
    part = {"layers": layers, "total": {"LUT": 2469.0, "BRAM_18K": 4.0, "URAM": 0.0, "DSP": 2.0}, "max_cycles": 123456,
            "estimated_fps": 810.0, "bottleneck": "ConvolutionInputGenerator_rtl_0", "verified": True}  # fmt: skip
    console, buf = _console(40, TableConsole)
    print_report({"model": "vic_edge", "bits": "W8A4", "board": "pynq-z2", "clock_ns": 10.0, "parts": {"early": part}}, console)
    _assert_whole(buf.getvalue(), {"ConvolutionInputGenerator_rtl_0", "ConvolutionInputGenerator_rtl_1", "1234.5", "123456"})


def test_stream_json_is_the_summary(capsys, monkeypatch, tmp_path):
    out = _run(capsys, monkeypatch, 40, "stream", "--source", "sample", "--quiet", "--json", "--summary-json", tmp_path / "s.json")
    got = json.loads(out)
    assert got == json.loads((tmp_path / "s.json").read_text())
    assert got["model"] == "vic_edge" and got["outputs"] == got["frames_in"] - 8


def test_demo_json_is_the_summary(capsys, monkeypatch, tmp_path):
    got = json.loads(_run(capsys, monkeypatch, 40, "demo", "--steps", "model", "--out", tmp_path, "--json"))
    written = json.loads((tmp_path / "summary.json").read_text())
    assert got.pop("artifacts") == {"summary": str(tmp_path / "summary.json")} and written.pop("artifacts") == {}
    assert got == written and got["results"]["model"]["params"] > 0
