"""``build-fpga --target-fps max``: the search over folding targets, and the cameras a design sustains."""

from __future__ import annotations

import json

import pytest

from vidconv_edge.hw.boards import get_board
from vidconv_edge.hw.report import combine
from vidconv_edge.hw.search import Trial, search, trial_of


def fake_design(lut_per_fps: float, fps_cap: float, lut_limit: float = 0.8):
    """A design whose rate follows the target up to ``fps_cap`` (its slowest layer fully unfolded) and whose
    LUT use grows with the rate reached."""
    built = []

    def build(target: float) -> Trial:
        fps = min(target * 1.1, fps_cap)
        lut = 0.2 + lut_per_fps * fps
        built.append(target)
        return Trial(target, fps, lut <= lut_limit, {"LUT": lut, "BRAM_18K": 0.3}, [] if lut <= lut_limit else ["LUT"], "MVAU_7")

    return build, built


def test_search_stops_at_the_resource_and_bisects_towards_it():
    build, built = fake_design(lut_per_fps=0.003, fps_cap=1000)  # LUT passes 80% at 200 fps
    result = search(build)
    assert built[:4] == [30, 66, 145.2, 319.4]  # each next target: twice the rate reached (1.1 x its target)
    best = result.best
    assert best.fits and 150 <= best.estimated_fps <= 200
    assert all(t.estimated_fps <= best.estimated_fps for t in result.trials if t.fits)
    assert result.stopped_by["reason"] == "resource" and result.stopped_by["resources"] == ["LUT"]
    assert "LUT" in result.stopped_by["note"] and len(result.trials) <= 8
    failing = min(t.target_fps for t in result.trials if not t.fits)
    assert failing <= best.target_fps * 1.1 + 1e-9  # bisected to within 10%


def test_search_stops_when_the_slowest_layer_cannot_unfold_further():
    build, built = fake_design(lut_per_fps=0.0001, fps_cap=73)
    result = search(build)
    assert result.best.estimated_fps == pytest.approx(72.6) and result.stopped_by["reason"] == "layer"
    assert result.stopped_by["layer"] == "MVAU_7" and "cannot unfold further" in result.stopped_by["note"]
    assert built == [30, 66, 145.2] and result.best.target_fps == 66  # 145.2 gave no more: the layer is at its limit


def test_search_reports_when_nothing_fits():
    build, built = fake_design(lut_per_fps=1.0, fps_cap=1000)
    result = search(build)
    assert result.best is None and result.stopped_by["reason"] == "resource" and built == [30, 15, 7.5]


def test_trial_of_reads_the_slowest_pipeline_of_a_merged_design():
    report = {"design": "merged", "estimated_fps": 37.7, "fits": True, "utilization": {"LUT": 0.65},
              "overflow": [], "merged": {"estimated_fps": 37.7, "bottleneck": "MVAU_hls_3"}, "parts": {}}  # fmt: skip
    t = trial_of(60, report)
    assert (t.target_fps, t.estimated_fps, t.fits, t.bottleneck) == (60.0, 37.7, True, "MVAU_hls_3")


def test_build_report_states_how_many_30_fps_cameras_it_sustains():
    part = lambda fps: {"total": {"LUT": 1000, "BRAM_18K": 10, "URAM": 0, "DSP": 1}, "estimated_fps": fps}  # noqa: E731
    out = combine({"early": part(169.5), "later": part(97.0)}, get_board("pynq-z2"), "W8A4", merged=True)
    assert out["estimated_fps"] == 97.0 and out["cameras_at_30fps"] == 3
    assert combine({"clip": part(29.9)}, get_board("pynq-z2"), "W8A4")["cameras_at_30fps"] == 0


def test_cli_target_fps_takes_a_number_or_max(tmp_path, capsys):
    from vidconv_edge.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["build-fpga", "--board", "pynq-z2", "--out", str(tmp_path / "b"), "--target-fps", "fast"])
    assert exit_.value.code == 2 and not (tmp_path / "b").exists()
    assert "expected a number of frames per second or 'max'" in capsys.readouterr().err


@pytest.mark.slow
def test_target_fps_max_on_a_real_build(tmp_path):
    """A tiny vic_edge early-net: the search builds to the estimates, the best design is built completely and is
    faster than the default 30 fps target while it fits."""
    import torch

    from vidconv_edge.hw.search import build_fpga_max_fps
    from vidconv_edge.hw.source import calibrated_for_board
    from vidconv_edge.models import create_model
    from vidconv_edge.quant.bits import make_bits
    from vidconv_edge.quant.model import save_quant_checkpoint

    torch.manual_seed(0)
    q = calibrated_for_board(create_model("vic_edge", img_size=32, dims=(8, 16, 32, 64), num_classes=3).eval(), make_bits(8, act_bits=4))
    save_quant_checkpoint(tmp_path / "q.pt", q, ["a", "b", "c"])
    report = build_fpga_max_fps(tmp_path / "q.pt", "pynq-z2", tmp_path / "b", part="early", max_trials=3, log=lambda _m: None)
    search_ = report["fps_search"]
    first, second = search_["trials"][:2]
    assert first["target_fps"] == 30.0 and second["target_fps"] == round(2 * first["estimated_fps"], 1)
    assert report["target_fps"] == search_["best_target_fps"] > 30 and report["fits"] and report["verified"]
    assert report["estimated_fps"] >= max(t["estimated_fps"] for t in search_["trials"] if t["fits"]) * 0.99
    assert report["cameras_at_30fps"] == int(report["estimated_fps"] // 30)
    saved = json.loads((tmp_path / "b" / "report.json").read_text())
    assert saved["fps_search"] == search_ and (tmp_path / "b" / "fps_search" / "target_30").is_dir()
    # the other designs and the final build continue the first design after its target-independent steps
    assert report["parts"]["early"]["shared_from"] == str(tmp_path / "b" / "fps_search" / "target_30" / "early")


def test_trial_of_reads_a_clip_design():
    report = {"design": "separate", "estimated_fps": 31.8, "fits": False, "utilization": {"BRAM_18K": 1.19},
              "overflow": [{"resource": "BRAM_18K"}], "parts": {"clip": {"estimated_fps": 31.8, "bottleneck": "MVAU_rtl_9"}}}  # fmt: skip
    t = trial_of(30, report)
    assert (t.estimated_fps, t.fits, t.overflow, t.bottleneck) == (31.8, False, ["BRAM_18K"], "MVAU_rtl_9")


@pytest.mark.slow
def test_target_fps_max_on_a_sevnet_clip_design(tmp_path):
    """SEVNet's one clip accelerator goes through the same search (tiny 2x32x32 W4A4 model, two designs)."""
    import torch

    from vidconv_edge.hw.search import build_fpga_max_fps
    from vidconv_edge.hw.source import calibrated_for_board
    from vidconv_edge.models import create_model
    from vidconv_edge.quant.bits import make_bits
    from vidconv_edge.quant.model import save_quant_checkpoint

    torch.manual_seed(0)
    q = calibrated_for_board(create_model("sevnet_edge", img_size=32, frames=2, num_classes=3).eval(), make_bits(4, act_bits=4))
    save_quant_checkpoint(tmp_path / "q.pt", q, ["a", "b", "c"])
    report = build_fpga_max_fps(tmp_path / "q.pt", "pynq-z2", tmp_path / "b", max_trials=2, log=lambda _m: None)
    trials = report["fps_search"]["trials"]
    assert report["part"] == "clip" and len(trials) == 2 and trials[1]["target_fps"] == round(2 * trials[0]["estimated_fps"], 1)
    best = max((t for t in trials if t["fits"]), key=lambda t: t["estimated_fps"])
    assert report["target_fps"] == best["target_fps"] and report["verified"] and report["fits"]
    assert report["estimated_fps"] == pytest.approx(best["estimated_fps"], rel=0.01)
    assert report["parts"]["clip"]["shared_from"] == str(tmp_path / "b" / "fps_search" / "target_30" / "clip")


def _comparable(value, here: str, there: str):
    """``value`` without times and sharing records, with the folder ``here`` named ``there``."""
    if isinstance(value, dict):
        return {k: _comparable(v, here, there) for k, v in value.items() if k not in ("seconds", "flow_seconds", "shared", "shared_from")}
    if isinstance(value, list):
        return [_comparable(v, here, there) for v in value]
    return value.replace(here, there) if isinstance(value, str) else value


@pytest.mark.slow
def test_a_design_continued_from_a_shared_start_equals_one_built_from_scratch(tmp_path):
    """A tiny vic_edge merged design (early + later) at 2000 fps continued after the target-independent steps of a
    30 fps build has the report (estimates, fit, streams, verification) and deploy manifest of the same design
    built from scratch, and its own folder serves finn-sim."""
    import torch

    from vidconv_edge.hw.deploy import load_deploy_manifest
    from vidconv_edge.hw.flow import MERGED_STEPS, SHARED_UNTIL, STEPS, SharedStart, build_fpga
    from vidconv_edge.hw.source import calibrated_for_board
    from vidconv_edge.models import create_model
    from vidconv_edge.quant.bits import make_bits
    from vidconv_edge.quant.model import save_quant_checkpoint
    from vidconv_edge.stream.backends.bundle import load_build

    torch.manual_seed(0)
    q = calibrated_for_board(create_model("vic_edge", img_size=32, dims=(8, 16, 32, 64), num_classes=3).eval(), make_bits(8, act_bits=4))
    save_quant_checkpoint(tmp_path / "q.pt", q, ["a", "b", "c"])
    quiet = {"log": lambda _m: None}
    shared = SharedStart()
    first = build_fpga(tmp_path / "q.pt", "pynq-z2", tmp_path / "a", target_fps=30, until="generate_estimate_reports", shared=shared, **quiet)
    assert shared.build_dir == tmp_path / "a" and shared.report is first
    continued = build_fpga(tmp_path / "q.pt", "pynq-z2", tmp_path / "b", target_fps=2000, shared=shared, **quiet)
    fresh = build_fpga(tmp_path / "q.pt", "pynq-z2", tmp_path / "c", target_fps=2000, **quiet)
    assert continued["estimated_fps"] > first["estimated_fps"] and continued["verified"]
    assert _comparable(continued, str(tmp_path / "b"), str(tmp_path / "c")) == _comparable(fresh, "", "")
    names = [n for n, _ in MERGED_STEPS]
    reused = [s["step"] for s in continued["merged"]["steps"] if s.get("shared")]
    assert reused == names[: names.index(SHARED_UNTIL) + 1] and continued["merged"]["shared_from"] == str(tmp_path / "a" / "merged")
    assert all(s.get("shared") for p in continued["parts"].values() for s in p["steps"])
    assert [s["step"] for s in continued["parts"]["early"]["steps"]] == [n for n, _ in STEPS][: len(continued["parts"]["early"]["steps"])]
    manifests = [load_deploy_manifest(tmp_path / d / "deploy") for d in ("b", "c")]
    assert _comparable(manifests[0], str(tmp_path / "b"), str(tmp_path / "c")) == manifests[1]
    bundle = load_build(tmp_path / "b")
    assert all(str(p.graph).startswith(str(tmp_path / "b")) for p in bundle.parts.values())
