"""vidconv_edge.hw: boards, the Vivado boundary, the report and fit check, the FINN flow end to end."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from vidconv_edge.cli import main
from vidconv_edge.errors import UserError
from vidconv_edge.hw import vivado
from vidconv_edge.hw.boards import BOARDS, get_board
from vidconv_edge.hw.report import combine, fit_check, read_part_reports

# --------------------------------------------------------------------------------------------- boards


def test_boards_registry_has_the_six_boards_with_capacity_and_precision():
    assert list(BOARDS) == ["pynq-z2", "pynq-z1", "ultra96-v2", "kv260", "zcu104", "u250"]
    z2 = get_board("Pynq-Z2")
    assert z2.part == "xc7z020clg400-1" and z2.clock_ns == 10.0 and z2.shell_flow == "vivado_zynq"
    assert z2.capacity == {"LUT": 53_200, "FF": 106_400, "BRAM_18K": 280, "URAM": 0, "DSP": 220}
    assert (z2.precision, z2.weight_bits, z2.act_bits) == ("W8A4", 8, 4)
    assert get_board("pynq-z1").precision == "W8A4"
    assert get_board("zcu104").precision == "W8A8" and get_board("u250").precision == "W8A8"
    assert get_board("u250").shell_flow == "vitis_alveo"
    # the precision follows capacity: W8A8 only where ~162k LUT (DESIGN estimate) fits under 80%
    for b in BOARDS.values():
        assert (b.act_bits == 8) == (0.8 * b.lut > 162_000), b.name


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(UserError, match="unknown board 'zedboard'.*pynq-z2.*u250"):
        get_board("zedboard")


def test_boards_cli_json(capsys):
    assert main(["boards", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kv260"]["capacity"]["URAM"] == 64 and data["pynq-z2"]["part"] == "xc7z020clg400-1"


def test_build_fpga_cli_rejects_bad_board_and_step(tmp_path, capsys):
    assert main(["build-fpga", "--board", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown board 'nope'" in capsys.readouterr().err
    assert main(["build-fpga", "--until", "synthesise", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown step 'synthesise'" in err and "step_generate_estimate_reports" in err


# ----------------------------------------------------------------------------------- Vivado boundary


def _no_xilinx(monkeypatch, path: str):
    monkeypatch.setenv("PATH", path)
    for var in ("XILINX_VIVADO", "XILINX_HLS", "XILINX_VITIS"):
        monkeypatch.delenv(var, raising=False)


def test_vivado_boundary_names_missing_tool_and_products(monkeypatch, tmp_path):
    _no_xilinx(monkeypatch, str(tmp_path))
    assert vivado.check_step("step_hw_codegen").ok  # code generation is pure Python
    check = vivado.check_step("step_hw_ipgen")
    assert check.missing == ("vitis_hls", "vivado")
    msg = vivado.boundary_message(check, ["estimate reports (early-net)", "HLS/RTL code (early-net)"])
    assert msg.startswith("step_hw_ipgen needs vitis_hls and vivado, which are not installed")
    assert "Produced so far: estimate reports (early-net), HLS/RTL code (early-net)" in msg
    synth = vivado.check_step("step_synthesize_bitfile", "vitis_alveo")
    assert synth.missing == ("vivado", "v++")
    assert "nothing" in vivado.boundary_message(synth, [])


def test_vivado_found_on_path_or_via_env(monkeypatch, tmp_path):
    _no_xilinx(monkeypatch, str(tmp_path))
    tool = tmp_path / "vivado"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    assert vivado.check_step("step_create_stitched_ip").ok
    assert vivado.check_step("step_hw_ipgen").missing == ("vitis_hls",)
    hls_root = tmp_path / "hls"
    (hls_root / "bin").mkdir(parents=True)
    (hls_root / "bin" / "vitis_hls").write_text("")
    monkeypatch.setenv("XILINX_HLS", str(hls_root))
    assert vivado.check_step("step_hw_ipgen").ok
    assert vivado.finn_tool_env()["XILINX_VIVADO"] == str(tmp_path.resolve().parent)


def test_until_decides_the_exit_code():
    from vidconv_edge.hw.flow import asked_for_missing_tools, resolve_until

    assert resolve_until("generate_estimate_reports") == "step_generate_estimate_reports"
    assert not asked_for_missing_tools(None, "step_hw_ipgen")  # default: as far as possible, exit 0
    assert not asked_for_missing_tools("hw_codegen", "step_hw_ipgen")
    assert asked_for_missing_tools("hw_ipgen", "step_hw_ipgen")
    assert asked_for_missing_tools("step_synthesize_bitfile", "step_hw_ipgen")
    assert not asked_for_missing_tools("synthesize_bitfile", None)


# ----------------------------------------------------------------------------------- report, fit check


def _fake_finn_reports(d, lut: float, bram: float, dsp: float, cycles: int, fps: float) -> None:
    d.mkdir(parents=True)
    res = {
        "MVAU_rtl_0": {"BRAM_18K": bram, "BRAM_efficiency": 0.5, "LUT": 0, "URAM": 0, "URAM_efficiency": 1, "DSP": dsp},
        "Thresholding_rtl_0": {"BRAM_18K": 0, "LUT": lut, "URAM": 0, "DSP": 0},
    }
    res["total"] = {"BRAM_18K": bram, "LUT": lut, "URAM": 0, "DSP": dsp}
    (d / "estimate_layer_resources.json").write_text(json.dumps(res))
    (d / "estimate_layer_cycles.json").write_text(json.dumps({"MVAU_rtl_0": cycles, "Thresholding_rtl_0": 100}))
    perf = {"critical_path_cycles": cycles + 100, "max_cycles": cycles, "max_cycles_node_name": "MVAU_rtl_0",
            "estimated_throughput_fps": fps, "estimated_latency_ns": (cycles + 100) * 10.0}  # fmt: skip
    (d / "estimate_network_performance.json").write_text(json.dumps(perf))


def test_report_reads_finn_estimates_and_checks_fit_with_margin(tmp_path):
    board = get_board("pynq-z2")
    _fake_finn_reports(tmp_path / "e", lut=6000, bram=40, dsp=10, cycles=500_000, fps=200.0)
    _fake_finn_reports(tmp_path / "l", lut=16000, bram=90, dsp=12, cycles=2_000_000, fps=50.0)
    early, later = read_part_reports(tmp_path / "e"), read_part_reports(tmp_path / "l")
    assert early["layers"][0] == {"layer": "MVAU_rtl_0", "LUT": 0.0, "BRAM_18K": 40.0, "URAM": 0.0, "DSP": 10.0,
                                  "cycles": 500_000}  # fmt: skip
    assert early["total"]["LUT"] == 6000 and early["bottleneck"] == "MVAU_rtl_0" and early["latency_ms"] == 5.001
    out = combine({"early": early, "later": later}, board, "W8A4")
    assert out["total"] == {"LUT": 22000, "BRAM_18K": 130, "URAM": 0, "DSP": 22}
    assert out["margin"]["LUT"] == 2200 + 3000 and out["margin"]["BRAM_18K"] == 26 + 4 and "FIFOs" in out["margin"]["note"]
    assert out["total_with_margin"] == {"LUT": 27200, "BRAM_18K": 160, "DSP": 22}
    assert out["fits"] is True and out["overflow"] == [] and out["estimated_fps"] == 50.0
    assert out["placement"]["later_net"] == "fabric" and "50.0 collages/s" in out["placement"]["why"]
    assert set(out["capacity"]) >= {"LUT", "BRAM_18K", "DSP"}


def test_too_big_model_names_the_overflowing_resource_and_what_to_try(tmp_path):
    board = get_board("pynq-z2")
    _fake_finn_reports(tmp_path / "e", lut=24400, bram=40, dsp=10, cycles=580_000, fps=170.0)
    _fake_finn_reports(tmp_path / "l", lut=138000, bram=120, dsp=30, cycles=2_000_000, fps=40.0)
    parts = {"early": read_part_reports(tmp_path / "e"), "later": read_part_reports(tmp_path / "l")}
    out = combine(parts, board, "W8A8")
    assert out["fits"] is False
    assert [o["resource"] for o in out["overflow"]] == ["LUT"]
    assert out["overflow"][0]["allowed"] == 0.8 * 53_200
    tips = " | ".join(out["suggestions"])
    assert "--target-fps" in tips and "W8A4" in tips and "a larger board: zcu104" in tips and "--part early" in tips
    assert out["placement"]["later_net"] == "arm" and out["estimated_fps"] == 170.0
    assert fit_check({"LUT": 0, "BRAM_18K": 0, "DSP": 0}, board)["fits"] is True
    uram = fit_check({"LUT": 0, "BRAM_18K": 0, "DSP": 0, "URAM": 2}, board)  # the xc7z020 has no URAM
    assert uram["fits"] is False and uram["overflow"][0]["resource"] == "URAM"
    # DESIGN's W8A8 estimate (24.4k + 138k LUT) fits the zcu104, the board whose profile is W8A8
    assert fit_check(out["total"], get_board("zcu104"))["fits"] is True


def test_report_without_estimates_does_not_claim_a_fit():
    out = combine({"early": {"steps": []}}, get_board("pynq-z2"), "W8A4")
    assert out["fits"] is False and out["estimated_fps"] is None and "stopped before" in out["fit_note"]


# ------------------------------------------------------------------------------------------ FINN steps


def test_check_all_hw_names_the_node_and_its_position():
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper

    from vidconv_edge.hw.config import HwBuildConfig
    from vidconv_edge.hw.errors import NotInHardware
    from vidconv_edge.hw.steps_checks import step_check_all_hw

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    dup = helper.make_node("DuplicateStreams", ["x"], ["a", "b"], domain="finn.custom_op.fpgadataflow", name="Dup_0")
    add = helper.make_node("Add", ["a", "b"], ["y"], name="Add_7")
    model = ModelWrapper(helper.make_model(helper.make_graph([dup, add], "g", [x], [y])))
    cfg = HwBuildConfig(output_dir="unused", target_fps=30, fpga_part="xc7z020clg400-1", part_name="later")
    with pytest.raises(NotInHardware, match=r"later-net: node 'Add_7' \(Add\) at position 1 of 2 .*share the quantizer"):
        step_check_all_hw(model, cfg)


def test_exact_identity_removal_keeps_near_identity_scales():
    """FINN's RemoveIdentityOps drops Mul by 0.999995 (an untrained BN: 1/sqrt(1+eps)); ours keeps it."""
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.remove import RemoveIdentityOps

    from vidconv_edge.hw.steps_streamline import RemoveExactIdentityOps

    def graph(scale: float) -> ModelWrapper:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
        nodes = [helper.make_node("Mul", ["x", "s"], ["t"]), helper.make_node("Relu", ["t"], ["y"])]
        m = ModelWrapper(helper.make_model(helper.make_graph(nodes, "g", [x], [y])))
        m.set_initializer("s", np.full([1, 4], scale, dtype=np.float32))
        return m

    assert len(graph(0.999995).transform(RemoveIdentityOps()).graph.node) == 1  # the pitfall: the Mul is gone
    assert len(graph(0.999995).transform(RemoveExactIdentityOps()).graph.node) == 2
    assert len(graph(1.0).transform(RemoveExactIdentityOps()).graph.node) == 1


@pytest.fixture(scope="module")
def tiny_qcheckpoint(tmp_path_factory):
    """A calibrated W8A4 vic_edge at 32x32 (untrained weights: the flow, not the accuracy, is under test)."""
    import torch

    from vidconv_edge.hw.source import calibrated_for_board
    from vidconv_edge.models import create_model
    from vidconv_edge.quant.bits import make_bits
    from vidconv_edge.quant.model import save_quant_checkpoint

    torch.manual_seed(0)
    qmodel = calibrated_for_board(create_model("vic_edge", img_size=32).eval(), make_bits(8, act_bits=4))
    path = tmp_path_factory.mktemp("hw") / "q32.pt"
    save_quant_checkpoint(path, qmodel, [str(i) for i in range(10)])
    return path


@pytest.mark.slow
def test_build_fpga_early_net_end_to_end(tiny_qcheckpoint, tmp_path, capsys):
    out = tmp_path / "build"
    rc = main(["build-fpga", str(tiny_qcheckpoint), "--board", "pynq-z2", "--out", str(out), "--part", "early"])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["board"] == "pynq-z2" and report["bits"] == "W8A4" and report["part"] == "early"
    assert report["fits"] is True and report["verified"] is True
    for key in ("total", "capacity"):
        assert {"LUT", "BRAM_18K", "DSP"} <= set(report[key])
    assert report["capacity"]["LUT"] == 53_200 and 0 < report["total"]["LUT"] < 53_200
    early = report["parts"]["early"]
    assert report["estimated_fps"] == pytest.approx(early["estimated_fps"], abs=0.01) and report["estimated_fps"] > 30
    assert early["io"]["input"] == {"datatype": "UINT8", "scale": 1.0, "what": "pixels 0..255", "layout": "NHWC"}
    assert early["io"]["output"]["shape"] == [1, 4, 4, 32] and early["io"]["output"]["datatype"] == "INT4"
    assert early["io"]["verification"]["bit_exact"] and early["io"]["verification"]["samples"] == 2
    assert sum(layer["LUT"] for layer in early["layers"]) == pytest.approx(report["total"]["LUT"])
    assert any(layer["layer"].startswith("VVAU") for layer in early["layers"])
    if vivado.find_tool("vitis_hls") is None:
        assert report["stopped"].startswith("step_hw_ipgen needs vitis_hls")
        assert "HLS/RTL code (early-net)" in report["produced"]
        assert early["steps"][-1]["step"] == "step_hw_codegen"
    assert list((out / "finn_tmp").rglob("*.sv")) or list((out / "finn_tmp").rglob("*.cpp"))
    printed = capsys.readouterr().out
    assert "fit check" in printed and "MVAU" in printed and "[early] step_verify_hw_python" in printed

    # the verification step fails loudly on a wrong reference
    from qonnx.core.modelwrapper import ModelWrapper

    from vidconv_edge.hw.config import HwBuildConfig
    from vidconv_edge.hw.errors import VerificationFailed
    from vidconv_edge.hw.steps_verify import step_verify_hw_python

    part_dir = out / "early"
    expected = np.load(part_dir / "verify_expected_output.npy")
    expected[0, 0, 0, 0] += 1
    np.save(tmp_path / "wrong.npy", expected)
    cfg = HwBuildConfig(output_dir=str(tmp_path / "v"), target_fps=30, fpga_part="xc7z020clg400-1",
                        verify_input_npy=str(part_dir / "verify_input.npy"),
                        verify_expected_output_npy=str(tmp_path / "wrong.npy"))  # fmt: skip
    partition = next((part_dir / "intermediate_models").glob("*_step_create_dataflow_partition.onnx"))
    with pytest.raises(VerificationFailed, match="differs from the QONNX model in 1 of"):
        step_verify_hw_python(ModelWrapper(str(partition)), cfg)
    assert os.path.exists(out / "qonnx" / "early.onnx")
