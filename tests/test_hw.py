"""vidconv_edge.hw: boards, the Vivado boundary, the report and fit check, the FINN flow end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path
import stat

import numpy as np
import pytest

from vidconv_edge.cli import main
from vidconv_edge.errors import UserError
from vidconv_edge.hw import vivado
from vidconv_edge.hw.boards import BOARDS, get_board
from vidconv_edge.hw.flow import build_fpga
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


def test_each_build_gets_its_own_finn_build_dir(tmp_path):
    """FINN caches its settings at first use: a second build in the same process must not reuse the first's."""
    from vidconv_edge.hw.finn_env import apply_finn_environment, prepare_finn

    prepare_finn()
    from finn.util.basic import make_build_dir

    for name in ("a", "b"):
        apply_finn_environment(tmp_path / name)
        assert Path(make_build_dir("code_gen_")).parent == tmp_path / name / "finn_tmp"


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


def _threshold_layer(channels: int, steps: int):
    """One 8-bit Thresholding_rtl layer (PE 1) on a 4x4 INT16 map: ``steps`` thresholds per channel."""
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    from vidconv_edge.hw.config import HwBuildConfig  # noqa: F401  (FINN prepared)
    from finn.transformation.fpgadataflow.convert_to_hw.thresholding import InferThresholdingLayer
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, channels])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, channels])
    node = helper.make_node("MultiThreshold", ["x", "t"], ["y"], domain="qonnx.custom_op.general",
                            out_dtype="UINT8", data_layout="NHWC")  # fmt: skip
    model = ModelWrapper(helper.make_model(helper.make_graph([node], "g", [x], [y])))
    thresholds = np.sort(np.random.default_rng(0).integers(-3000, 3000, (channels, steps)), 1)
    model.set_initializer("t", thresholds.astype(np.float32))
    model.set_tensor_datatype("x", DataType["INT16"])
    model = model.transform(InferShapes()).transform(InferDataTypes())
    for name in ("x", "y"):
        model.set_tensor_layout(name, ["N", "H", "W", "C"])
    model = model.transform(InferThresholdingLayer())
    return model.transform(SpecializeLayers("xczu7ev-ffvc1156-2-e"))


@pytest.mark.parametrize("board", ["pynq-z2", "zcu104"])
def test_memory_styles_put_deep_threshold_memories_in_uram_only_where_the_part_has_it(board):
    """255 thresholds x 512 channels: 4.3 Mbit in LUTRAM or ~140 BRAM18; on the ZCU104 the balance uses its URAM."""
    from vidconv_edge.hw.config import HwBuildConfig
    from vidconv_edge.hw.steps_folding import estimated_use, step_memory_styles

    b = get_board(board)
    cfg = HwBuildConfig(output_dir="unused", target_fps=30, fpga_part=b.part, lut_capacity=b.lut,
                        bram_capacity=b.bram_18k, uram_capacity=b.uram)  # fmt: skip
    model = step_memory_styles(_threshold_layer(512, 255), cfg)
    chosen = cfg.io.memory_styles
    use, total = estimated_use(model, cfg)
    assert use == min(estimated_use(_apply(model, c, b.part), cfg)[0] for c in chosen["candidates"])
    if board == "pynq-z2":
        assert total["URAM"] == 0 and {c["threshold_uram_depth"] for c in chosen["candidates"]} == {2**30}
    else:
        assert total["URAM"] > 0 and chosen["threshold_uram_depth"] < 2**30
        no_uram = [c for c in chosen["candidates"] if c["threshold_uram_depth"] == 2**30]
        assert use < min(estimated_use(_apply(model, c, b.part), cfg)[0] for c in no_uram)


def _apply(model, c: dict, part: str):
    from vidconv_edge.hw.steps_folding import apply_memory_styles

    apply_memory_styles(model, part, c["swg_block_lut"], c["threshold_bram_depth"], c["threshold_uram_depth"])
    return model


def test_bram_overflow_at_8_bit_weights_suggests_4_bit_weights(tmp_path):
    """A BRAM overflow at W8 suggests 4-bit weights (the numbers: full-size sevnet_edge at W8A4 / W4A4 when its grouped
    convs were lowered as dense block-diagonal ones)."""
    board = get_board("pynq-z2")
    _fake_finn_reports(tmp_path / "w8", lut=33102, bram=277, dsp=73, cycles=3_145_728, fps=31.79)
    out = combine({"clip": read_part_reports(tmp_path / "w8")}, board, "W8A4")
    assert out["fits"] is False and [o["resource"] for o in out["overflow"]] == ["BRAM_18K"]
    assert any("--precision W4A4" in tip and "W8 -> W4" in tip for tip in out["suggestions"])
    assert out["estimated_fps"] == 31.79 and "placement" not in out
    _fake_finn_reports(tmp_path / "w4", lut=31804, bram=157, dsp=89, cycles=3_145_728, fps=31.79)
    assert combine({"clip": read_part_reports(tmp_path / "w4")}, board, "W4A4")["fits"] is True


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


def test_thresholds_are_derived_in_float64(tmp_path):
    """int32-grid bias, accumulator scale and ReLU quantizer whose boundary 2.5 lies at accumulator 1543.0000119:
    float32 stores that threshold as 1543.0 (accumulator 1543 -> 3), the flow's float64 streamlining as 1544,
    and the HW graph equals the float64 QONNX reference (1543 -> 2)."""
    from fractions import Fraction

    import onnx
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    from vidconv_edge.hw.config import HwBuildConfig
    from vidconv_edge.hw.reference import run_qonnx_float64
    from vidconv_edge.hw.steps_qonnx import step_qonnx_to_finn_float64
    from vidconv_edge.hw.steps_streamline import step_vidconv_streamline
    from finn.builder.build_dataflow_steps import step_tidy_up

    s_acc, s_out = np.float32(0.0007217514), np.float32(0.41659492)
    bias = np.float32(-100 * s_acc)
    exact = (Fraction(2.5) * Fraction(float(s_out)) - Fraction(float(bias))) / Fraction(float(s_acc))
    assert 1543 < exact < 1543.0001 and np.ceil((np.float32(2.5) * s_out - bias) / s_acc) == 1543  # the float32 pitfall

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [
        helper.make_node("Mul", ["x", "s_acc"], ["acc"]), helper.make_node("Add", ["acc", "bias"], ["pre"]),
        helper.make_node("Relu", ["pre"], ["act"]),
        helper.make_node("Quant", ["act", "s_out", "zero", "bits"], ["y"], domain="qonnx.custom_op.general",
                         signed=0, narrow=0, rounding_mode="ROUND"),
    ]  # fmt: skip
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid("qonnx.custom_op.general", 1)]
    model = ModelWrapper(helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=opsets))
    for name, value in (("s_acc", s_acc), ("bias", bias), ("s_out", s_out), ("zero", 0.0), ("bits", 4.0)):
        model.set_initializer(name, np.asarray(value, dtype=np.float32))
    model.set_tensor_datatype("x", DataType["INT16"])
    onnx.save(model.model, tmp_path / "q.onnx")

    cfg = HwBuildConfig(output_dir=str(tmp_path / "b"), target_fps=30, fpga_part="xc7z020clg400-1", part_name="later")
    hw = step_vidconv_streamline(step_tidy_up(step_qonnx_to_finn_float64(model, cfg), cfg), cfg)
    assert [n.op_type for n in hw.graph.node][0] == "MultiThreshold"
    assert hw.get_initializer(hw.graph.node[0].input[1]).dtype == np.float32
    acc = np.array([[1542, 1543, 1544, 0]], dtype=np.float32)
    got = execute_onnx(hw, {hw.graph.input[0].name: acc})[hw.graph.output[0].name]
    expected = run_qonnx_float64(tmp_path / "q.onnx", acc)
    assert np.array_equal(np.round(got / s_out), [[2, 2, 3, 0]])
    assert np.array_equal(np.round(expected / s_out), [[2, 2, 3, 0]])


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
    assert {k: early["io"]["input"][k] for k in ("datatype", "scale", "layout", "shape")} == {
        "datatype": "UINT8", "scale": 1.0, "layout": "NHWC", "shape": [1, 32, 32, 3]}  # fmt: skip
    assert early["io"]["output"]["shape"] == [1, 4, 4, 32] and early["io"]["output"]["datatype"] == "INT4"
    assert early["io"]["input"]["folded_shape"][-2:] == [3, 1] and early["io"]["output"]["packed_shape"]
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


# ------------------------------------------------------------------------------------ float64 reference


def _conv_quant_graph(weights: list[float]):
    """x (1, C, 1, 1) -> 1x1 conv with ``weights`` -> 8-bit signed Quant, scale 1, round half to even."""
    from onnx import TensorProto, helper, numpy_helper

    c = len(weights)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 1, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, 1])
    inits = [
        numpy_helper.from_array(np.asarray(weights, dtype=np.float32).reshape(1, c, 1, 1), "w"),
        *(numpy_helper.from_array(np.asarray(v, dtype=np.float32), n) for n, v in (("s", 1.0), ("z", 0.0), ("b", 8.0))),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["v"], kernel_shape=[1, 1]),
        helper.make_node("Quant", ["v", "s", "z", "b"], ["y"], domain="qonnx.custom_op.general", signed=1, narrow=0,
                         rounding_mode="ROUND"),  # fmt: skip
    ]
    v = helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 1, 1, 1])
    graph = helper.make_graph(nodes, "g", [x], [y], inits, value_info=[v])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.opset_import.append(helper.make_opsetid("qonnx.custom_op.general", 1))
    return model


def test_float64_reference_rounds_what_float32_turns_into_a_tie(tmp_path):
    """2.5 + 1e-7 is 2.5 in float32 (a tie, rounded to even: 2); exactly it rounds to 3, as FINN's thresholds do."""
    import onnx

    from vidconv_edge.export.qonnx import run_qonnx
    from vidconv_edge.hw.reference import run_qonnx_float64

    onnx.save(_conv_quant_graph([2.5, 1e-7]), tmp_path / "tie.onnx")
    x = np.ones((2, 2, 1, 1), dtype=np.float32)
    assert run_qonnx(tmp_path / "tie.onnx", x).ravel().tolist() == [2.0, 2.0]
    assert run_qonnx_float64(tmp_path / "tie.onnx", x).ravel().tolist() == [3.0, 3.0]
    # an exact tie still rounds half to even, as the QONNX node says
    onnx.save(_conv_quant_graph([2.5, 0.0]), tmp_path / "exact.onnx")
    assert run_qonnx_float64(tmp_path / "exact.onnx", x).ravel().tolist() == [2.0, 2.0]


def test_cast_float_tensors_casts_only_float_tensors_and_leaves_the_model_unchanged():
    from onnx import TensorProto, numpy_helper

    from vidconv_edge.hw.precision import cast_float_tensors

    model = _conv_quant_graph([2.5, 1e-7])
    model.graph.initializer.append(numpy_helper.from_array(np.asarray([1, -1], dtype=np.int64), "shape"))
    doubled = cast_float_tensors(model, TensorProto.DOUBLE)
    types = {t.name: t.data_type for t in doubled.graph.initializer}
    assert types == {"w": TensorProto.DOUBLE, "s": TensorProto.DOUBLE, "z": TensorProto.DOUBLE,
                     "b": TensorProto.DOUBLE, "shape": TensorProto.INT64}  # fmt: skip
    assert numpy_helper.to_array(doubled.graph.initializer[0]).ravel().tolist() == [2.5, np.float32(1e-7)]
    assert {vi.type.tensor_type.elem_type for vi in [*doubled.graph.input, *doubled.graph.output]} == {11}
    assert model.graph.initializer[0].data_type == TensorProto.FLOAT  # a copy: the input is untouched


def test_thresholds_in_float64_holds_finns_default_dtype_only_inside():
    import finn.transformation.qonnx.qonnx_activation_handlers as handlers

    from vidconv_edge.hw.precision import thresholds_in_float64

    before = handlers.np_default_dtype
    assert before is np.float32
    with thresholds_in_float64():
        assert handlers.np_default_dtype is np.float64
    assert handlers.np_default_dtype is before
    with pytest.raises(RuntimeError), thresholds_in_float64():
        raise RuntimeError("a conversion fails")
    assert handlers.np_default_dtype is before


# ------------------------------------------------------------------------------- part formats, deploy


def test_later_input_quant_metadata_is_the_early_output_quantizer(tiny_qcheckpoint, tmp_path):
    import onnx

    from vidconv_edge.export.onnx import METADATA_KEY
    from vidconv_edge.export.qonnx import export_qonnx, read_qonnx_metadata
    from vidconv_edge.hw.source import linked_format
    from vidconv_edge.quant.model import quant_model_from_checkpoint

    qmodel, _ = quant_model_from_checkpoint(tiny_qcheckpoint)
    for part in ("early", "later"):
        export_qonnx(qmodel, tmp_path / f"{part}.onnx", part)
    early, later = (read_qonnx_metadata(tmp_path / f"{p}.onnx") for p in ("early", "later"))
    assert later["input_quant"] == early["output_quant"]
    assert early["input_quant"] == {"scale": 1.0, "zero_point": 0.0, "bit_width": 8, "signed": False, "narrow": False,
                                    "datatype": "UINT8"}  # fmt: skip
    fmt = later["input_quant"]
    assert (fmt["bit_width"], fmt["signed"], fmt["datatype"]) == (4, True, "INT4")
    assert fmt["scale"] == pytest.approx(float(qmodel.early_quant.act_quant.scale().detach()), rel=0)
    assert later["output_quant"]["datatype"] == "INT8"
    # the early file's output Quant node agrees (the check build-fpga makes before building the later part)
    assert linked_format(tmp_path / "early.onnx", tmp_path / "later.onnx") == (fmt["scale"], "INT4")
    m = onnx.load(tmp_path / "later.onnx")
    meta = json.loads(m.metadata_props[0].value)
    meta["input_quant"]["scale"] *= 2
    m.metadata_props[0].CopyFrom(onnx.StringStringEntryProto(key=METADATA_KEY, value=json.dumps(meta)))
    onnx.save(m, tmp_path / "later.onnx")
    with pytest.raises(UserError, match="expects input INT4 x .* but .* outputs INT4"):
        linked_format(tmp_path / "early.onnx", tmp_path / "later.onnx")


def _fake_build(tmp_path, placement: str = "fabric"):
    """A report + BuildSource as build_fpga leaves them (no FINN run): early and later driver settings."""
    from vidconv_edge.hw.partio import VERSION
    from vidconv_edge.hw.source import BuildSource, PartSource

    out = tmp_path / "build"
    src = BuildSource("vic_edge", "W8A4", "test", layout=(3, 3), img_size=32, frames=9, class_names=["a", "b"],
                      float_spec={"mean": [0.5] * 3, "std": [0.25] * 3})  # fmt: skip
    io = {
        "early": ({"shape": [1, 32, 32, 3], "datatype": "UINT8", "scale": 1.0, "layout": "NHWC",
                   "folded_shape": [1, 32, 32, 3, 1], "packed_shape": [1, 32, 32, 3, 1]},
                  {"shape": [1, 4, 4, 32], "datatype": "INT4", "scale": 0.25, "layout": "NHWC",
                   "folded_shape": [1, 4, 4, 32, 1], "packed_shape": [1, 4, 4, 32, 1]}),
        "later": ({"shape": [1, 12, 12, 32], "datatype": "INT4", "scale": 0.25, "layout": "NHWC",
                   "folded_shape": [1, 12, 12, 32, 1], "packed_shape": [1, 12, 12, 32, 1]},
                  {"shape": [1, 2], "datatype": "INT8", "scale": 0.125, "layout": "NC",
                   "folded_shape": [1, 2, 1], "packed_shape": [1, 2, 1]}),
    }  # fmt: skip
    parts = {}
    for name, (i, o) in io.items():
        (out / name).mkdir(parents=True)
        (out / name / "driver_settings.json").write_text(json.dumps({"driver_information": {"driver_type": "x"}}))
        (out / "qonnx").mkdir(exist_ok=True)
        (out / "qonnx" / f"{name}.onnx").write_bytes(b"onnx")
        src.parts[name] = PartSource(name, out / "qonnx" / f"{name}.onnx", np.zeros(1), np.zeros(1))
        parts[name] = {"io": {"version": VERSION, "input": i, "output": o}, "estimated_fps": 50.0, "verified": True,
                       "steps": [{"step": "step_driver_settings", "seconds": 0.1}]}  # fmt: skip
    report = {
        "board_info": get_board("pynq-z2").to_dict(), "clock_ns": 10.0, "parts": parts, "estimated_fps": 50.0,
        "verified": True, "until": "step_deployment_package",
        "placement": {"early_net": "fabric", "later_net": placement, "why": "test"},
        "stopped": "step_hw_ipgen needs vitis_hls and vivado, which are not installed",
    }  # fmt: skip
    return report, src, out


def test_deploy_bundle_manifest_files_and_readme(tmp_path):
    from vidconv_edge.hw.deploy import load_deploy_manifest, write_deploy_bundle
    from vidconv_edge.stream.backends.bundle import load_manifest

    report, src, out = _fake_build(tmp_path)
    bitdir = out / "early" / "bitfile"  # as if Vivado had built the early-net
    bitdir.mkdir()
    (bitdir / "finn-accel.bit").write_bytes(b"bit")
    (bitdir / "finn-accel.hwh").write_text("hwh")
    path = write_deploy_bundle(report, src, out)
    m = load_deploy_manifest(path)
    assert (m["model"], m["class_names"], m["frames"], m["size"]) == ("vic_edge", ["a", "b"], 9, 32)
    assert m["layout"] == [3, 3] and m["bits"] == "W8A4" and m["board"]["name"] == "pynq-z2"
    early, later = m["parts"]["early"], m["parts"]["later"]
    assert early["bitfile"] == "early/finn-accel.bit" and (path / early["hwh"]).read_text() == "hwh"
    assert later["bitfile"] is None and later["runs_on"] == "fabric" and later["per"] == "collage"
    assert [x["file"] for x in m["missing"]] == ["later/finn-accel.bit", "later/finn-accel.hwh"]
    assert "vitis_hls" in m["missing"][0]["why"]
    assert later["input"]["scale"] == early["output"]["scale"] == 0.25 and later["output"]["layout"] == "NC"
    assert m["collage"]["shape"] == [1, 12, 12, 32] and m["collage"]["tile"] == [4, 4]
    for part in m["parts"].values():  # every referenced file is in the bundle
        for key in ("driver_settings", "bitfile", "hwh"):
            assert part[key] is None or (path / part[key]).is_file(), part[key]
    readme = (path / "README.md").read_text()
    assert "finn-plus-driver -b early/finn-accel.bit -s early/settings.json" in readme
    assert "`later/finn-accel.bit`: step_hw_ipgen needs vitis_hls" in readme
    board = load_manifest(path)  # the stream package's pynq backend reads the same file
    assert board.parts["later"].input.scale == 0.25 and board.parts["early"].bitfile == path / "early/finn-accel.bit"


def test_deploy_bundle_later_on_arm_ships_its_qonnx_and_replaces_atomically(tmp_path):
    from vidconv_edge.hw.deploy import load_deploy_manifest, write_deploy_bundle

    report, src, out = _fake_build(tmp_path, placement="arm")
    first = write_deploy_bundle(report, src, out)
    later = load_deploy_manifest(first)["parts"]["later"]
    assert later["runs_on"] == "arm" and later["onnx_format"] == "qonnx"
    assert (first / later["onnx"]).read_bytes() == b"onnx"
    assert later["driver_settings"] is None
    # a failing rewrite leaves the previous bundle whole and no temp folders behind
    (out / "qonnx" / "later.onnx").unlink()
    (out / "qonnx" / "later.onnx").mkdir()  # copying a folder as a file fails
    with pytest.raises(UserError, match="cannot write the deploy bundle"):
        write_deploy_bundle(report, src, out)
    assert load_deploy_manifest(first)["parts"]["later"]["runs_on"] == "arm"
    assert sorted(p.name for p in out.iterdir()) == ["deploy", "early", "later", "qonnx"]
    with pytest.raises(UserError, match="not a vidconv-edge deploy manifest"):
        (tmp_path / "m.json").write_text("{}")
        load_deploy_manifest(tmp_path / "m.json")


def test_deploy_bundle_of_the_merged_design_is_one_accelerator(tmp_path):
    from vidconv_edge.hw.deploy import load_deploy_manifest, write_deploy_bundle
    from vidconv_edge.stream.backends.bundle import load_manifest

    report, src, out = _fake_build(tmp_path)
    report["design"] = "merged"
    for i, name in enumerate(("early", "later")):
        report["parts"][name].update(accelerator="merged", input_index=i, output_index=i)
    (out / "merged").mkdir()
    (out / "merged" / "driver_settings.json").write_text(json.dumps({"driver_information": {"driver_type": "m"}}))
    path = write_deploy_bundle(report, src, out)
    m = load_deploy_manifest(path)
    acc = m["accelerators"]["merged"]
    assert acc["inputs"] == acc["outputs"] == ["early", "later"] and acc["driver_settings"] == "merged/settings.json"
    for i, name in enumerate(("early", "later")):
        part = m["parts"][name]
        assert (part["accelerator"], part["input_index"], part["output_index"]) == ("merged", i, i)
        assert (part["bitfile"], part["driver_settings"]) == (None, "merged/settings.json")
    assert [x["file"] for x in m["missing"]] == ["merged/finn-accel.bit", "merged/finn-accel.hwh"]  # each once
    assert sorted(p.name for p in path.iterdir()) == ["README.md", "manifest.json", "merged"]
    readme = (path / "README.md").read_text()
    assert "finn-plus-driver -b merged/finn-accel.bit -s merged/settings.json" in readme
    assert "ONE design (`merged/`)" in readme and "two input and two output DMAs" in readme
    assert load_manifest(path).parts["later"].driver_settings == path / "merged/settings.json"


def test_merge_pipelines_keeps_two_independent_graphs_and_their_io_order(tmp_path):
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    from vidconv_edge.hw.steps_driver import dma_names
    from vidconv_edge.hw.steps_merge import merge_pipelines, pipeline_nodes

    a, b = ModelWrapper(_conv_quant_graph([1.0, 2.0])), ModelWrapper(_conv_quant_graph([0.5, -1.0, 3.0]))
    merged = merge_pipelines({"early": a, "later": b})
    assert [t.name for t in merged.graph.input] == ["early_x", "later_x"]
    assert [t.name for t in merged.graph.output] == ["early_y", "later_y"]
    names = [[f"{p}_{n.name}" for n in m.graph.node] for p, m in (("early", a), ("later", b))]
    assert pipeline_nodes(merged) == names
    onnx.checker.check_model(merged.model)
    xa, xb = np.full((1, 2, 1, 1), 3.0, np.float32), np.full((1, 3, 1, 1), 2.0, np.float32)
    got = execute_onnx(merged, {"early_x": xa, "later_x": xb})
    assert got["early_y"].item() == execute_onnx(a, {"x": xa})["y"].item() == 9.0
    assert got["later_y"].item() == execute_onnx(b, {"x": xb})["y"].item() == 5.0
    assert dma_names(2, 2) == (["idma1", "idma0"], ["odma0", "odma1"])  # InsertIODMA puts input 1's DMA first
    with pytest.raises(ValueError, match="the early-net graph has 2 inputs"):
        merge_pipelines({"early": merged, "later": b})


# ------------------------------------------------------------------------------ W8A8, QAT in the build


@pytest.fixture(scope="module")
def w8a8_qcheckpoint(tmp_path_factory):
    """A calibrated W8A8 vic_edge at 32x32 (the zcu104 / u250 precision)."""
    import torch

    from vidconv_edge.hw.source import calibrated_for_board
    from vidconv_edge.models import create_model
    from vidconv_edge.quant.bits import make_bits
    from vidconv_edge.quant.model import save_quant_checkpoint

    torch.manual_seed(1)
    qmodel = calibrated_for_board(create_model("vic_edge", img_size=32).eval(), make_bits(8, act_bits=8))
    path = tmp_path_factory.mktemp("hw8") / "q8.pt"
    save_quant_checkpoint(path, qmodel, [f"c{i}" for i in range(10)])
    return path


@pytest.mark.slow
def test_build_fpga_w8a8_bit_exact_deploy_bundle_and_later_part_from_qonnx(w8a8_qcheckpoint, tmp_path, capsys):
    from vidconv_edge.hw.deploy import load_deploy_manifest

    out = tmp_path / "b"
    args = ["build-fpga", str(w8a8_qcheckpoint), "--board", "zcu104", "--out", str(out), "--verify-samples", "3"]
    assert main([*args, "--until", "driver_settings"]) == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["bits"] == "W8A8" and report["verified"] is True
    for name, part in report["parts"].items():
        v = part["io"]["verification"]
        assert v["bit_exact"] and v["samples"] == 3 and "float64" in v["reference"], name
        assert v["float32_reference_differs"] == 0, name  # measured: qonnx's float32 run has no tie on these clips
    # --part both (default) is ONE design: both pipelines in one FINN build, one bitfile, a two-stream driver
    assert report["design"] == "merged" and report["merged"]["verified"]
    assert [s["step"] for s in report["merged"]["steps"]][:2] == ["step_create_dataflow_partition",
                                                                  "step_verify_merged_python"]  # fmt: skip
    for i, name in enumerate(("early", "later")):
        part = report["parts"][name]
        assert (part["accelerator"], part["input_index"], part["output_index"]) == ("merged", i, i)
        assert part["io"]["verification"]["merged_design"] == {"samples": 3, "bit_exact": True, "mismatches": 0,
                                                               "max_abs_diff": 0.0}  # fmt: skip
        assert part["steps"][-1]["step"] == "step_verify_hw_python"  # each part's own steps end there
    assert report["deploy"]["written"] and [m["file"] for m in report["deploy"]["missing"]] == [
        "merged/finn-accel.bit", "merged/finn-accel.hwh"]  # fmt: skip
    m = load_deploy_manifest(out / "deploy")
    early, later = m["parts"]["early"], m["parts"]["later"]
    assert early["output"]["datatype"] == later["input"]["datatype"] == "INT8"
    assert later["input"]["scale"] == early["output"]["scale"] and later["input"]["shape"] == m["collage"]["shape"]
    assert m["collage"]["shape"] == [1, 12, 12, 32] and later["output"]["shape"] == [1, 10]
    assert early["driver_settings"] == later["driver_settings"] == m["accelerators"]["merged"]["driver_settings"]
    assert m["accelerators"]["merged"]["inputs"] == ["early", "later"]
    assert (early["input_index"], later["input_index"]) == (0, 1)
    settings = json.loads((out / "deploy" / early["driver_settings"]).read_text())["driver_information"]
    shapes = settings["io_shape_dict"]
    assert settings["driver_type"] == "FINNDMAOverlay" and settings["platform"] == "zynq-iodma"
    assert shapes["num_inputs"] == shapes["num_outputs"] == 2 and settings["fclk_mhz"] == 200.0
    assert shapes["idt"] == ["DataType['UINT8']", "DataType['INT8']"] and shapes["odt"][1] == "DataType['INT8']"
    assert shapes["ishape_folded"] == [early["input"]["folded_shape"], later["input"]["folded_shape"]]
    assert shapes["oshape_normal"] == [early["output"]["shape"], later["output"]["shape"]]
    # ... and equal to what FINN's own Zynq flow derives: its IODMA insertion, partitioning and driver shapes
    assert shapes == _finn_zynq_driver_shapes(out / "merged", "ZCU104")

    # the later part alone, from its QONNX file: fed integers in its input_quant format
    out2 = tmp_path / "later"
    rc = main(["build-fpga", str(out / "qonnx" / "later.onnx"), "--part", "later", "--board", "zcu104",
               "--out", str(out2), "--until", "verify_hw_python"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    r2 = json.loads((out2 / "report.json").read_text())
    v2 = r2["parts"]["later"]["io"]["verification"]
    assert r2["verified"] and v2["bit_exact"] and v2["inputs"].startswith("random integer collages")
    assert r2["parts"]["later"]["io"]["input"]["scale"] == later["input"]["scale"]
    assert r2["deploy"] == {"written": False, "why": "the later part build stopped before step_driver_settings"}


def _finn_zynq_driver_shapes(merged_dir, finn_board: str) -> dict:
    """``get_driver_shapes`` of FINN's ZynqBuild preparation (IODMAs, width converters, specialisation,
    floorplan, partitions) of the merged design's last graph, DMAs named as MakeZYNQProject names them."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames
    from qonnx.transformation.infer_data_layouts import InferDataLayouts

    from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
    from finn.transformation.fpgadataflow.floorplan import Floorplan
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_iodma import InsertIODMA
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from finn.util.basic import get_driver_shapes, pynq_native_port_width, pynq_part_map

    last = sorted((merged_dir / "intermediate_models").glob("[0-9]*_step_*.onnx"))[-1]
    model = ModelWrapper(str(last)).transform(InferDataLayouts())
    prep = (InsertIODMA(pynq_native_port_width[finn_board]), InsertDWC(), SpecializeLayers(pynq_part_map[finn_board]),
            Floorplan(), CreateDataflowPartition(partition_model_dir=str(merged_dir / "zynq_partitions")))  # fmt: skip
    for t in prep:
        model = model.transform(t).transform(GiveUniqueNodeNames()).transform(GiveReadableTensorNames())
    idma = odma = 0
    for sdp in model.get_nodes_by_op_type("StreamingDataflowPartition"):  # MakeZYNQProject's naming
        if model.find_producer(sdp.input[0]) is None:
            getCustomOp(sdp).set_nodeattr("instance_name", f"idma{idma}")
            idma += 1
        elif not model.find_consumers(sdp.output[0]):
            getCustomOp(sdp).set_nodeattr("instance_name", f"odma{odma}")
            odma += 1
    shapes = {k: [list(v) if isinstance(v, tuple) else v for v in vals] for k, vals in get_driver_shapes(model).items()}
    return {**shapes, "num_inputs": idma, "num_outputs": odma, "number_of_external_weights": 0,
            "external_weights_input_shapes": {}}  # fmt: skip


@pytest.mark.slow
def test_build_fpga_quantizes_a_float_checkpoint_with_qat_and_reports_the_accuracy_cost(tmp_path):
    import torch

    from vidconv_edge.checkpoint import save_checkpoint
    from vidconv_edge.data.synth import write_synthetic_dataset
    from vidconv_edge.models import create_model
    from vidconv_edge.train.metrics import wilson_interval

    names = ["move_left", "move_right"]
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "float.pt", create_model("vic_edge", img_size=32, num_classes=2), names)
    data = write_synthetic_dataset(tmp_path / "data", per_class=4, size=32, classes=names, progress=False)
    test = write_synthetic_dataset(tmp_path / "test", per_class=3, size=32, classes=names, seed=9, progress=False)
    (test / "test.txt").write_text((test / "train.txt").read_text() + (test / "val.txt").read_text())
    report = build_fpga(ckpt, "pynq-z2", tmp_path / "b", part="early", until="tidy_up", data=data, qat_epochs=1,
                        test=test, log=lambda _m: None)  # fmt: skip
    q = report["quantization"]
    h = q["heldout"]  # the held-out clips, apart from the validation figures
    assert h["n"] == 6 and h["correct"] == round(h["top1"] * 6) and h["list"] == str(test / "test.txt")
    assert h["ci95"] == list(wilson_interval(h["correct"], 6))
    with pytest.raises(UserError, match="were used for calibration or selection"):
        build_fpga(ckpt, "pynq-z2", tmp_path / "e", part="early", until="tidy_up", data=data, test=data / "val.txt",
                   log=lambda _m: None)  # fmt: skip
    assert q["bits"] == "W8A4" and q["qat_epochs"] == 1 and q["val_videos"] == 2
    assert {"float_top1", "ptq_top1", "qat_top1"} <= set(q) and q["final"] in ("calibrated", "qat")
    assert q["quant_top1"] == max(q["ptq_top1"], q["qat_top1"])  # the quantize pipeline keeps the better one
    assert q["top1_drop"] == pytest.approx(q["float_top1"] - q["quant_top1"])
    assert report["bits"] == "W8A4" and "W8A4 PTQ + QAT 1 epoch(s), kept" in report["weights"]
    assert (tmp_path / "b" / "quant" / "quantized.pt").is_file()
    # without --data a set is generated, which only has the classes of a generated task (camera motion, shapes)
    other = save_checkpoint(tmp_path / "other.pt", create_model("vic_edge", img_size=32, num_classes=2), ["x", "y"])
    no_synth = r"no generated set for the checkpoint's classes \(no generated dataset has the classes .*give --data DIR"
    with pytest.raises(UserError, match=no_synth):
        build_fpga(other, "pynq-z2", tmp_path / "c", part="early", until="tidy_up", log=lambda _m: None)
    with pytest.raises(UserError, match="--qat-epochs fine-tunes a float checkpoint"):
        build_fpga(tmp_path / "b" / "quant" / "quantized.pt", "pynq-z2", tmp_path / "d", part="early",
                   until="tidy_up", qat_epochs=1, log=lambda _m: None)  # fmt: skip


@pytest.mark.slow
def test_build_fpga_lowers_a_quantized_sevnet_completely(tmp_path, capsys):
    """sevnet_edge (no SE) at 2x32x32, W8A4: its FPGA form (stacked clip, row masks) is one accelerator whose
    every node is a HW layer, bit-exact against the QONNX model on clips of the sample video."""
    import torch

    from vidconv_edge.hw.source import calibrated_for_board
    from vidconv_edge.models import create_model
    from vidconv_edge.quant.bits import make_bits
    from vidconv_edge.quant.model import save_quant_checkpoint

    torch.manual_seed(0)
    qmodel = calibrated_for_board(create_model("sevnet_edge", img_size=32, frames=2).eval(), make_bits(8, act_bits=4))
    save_quant_checkpoint(tmp_path / "sev.pt", qmodel, [str(i) for i in range(10)])
    out = tmp_path / "b"
    args = ["build-fpga", str(tmp_path / "sev.pt"), "--out", str(out)]  # to code generation (no Vivado here)
    assert main(args) == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "sevnet_edge" and report["bits"] == "W8A4" and report["part"] == "clip"
    assert report["verified"] is True and list(report["parts"]) == ["clip"]
    clip = report["parts"]["clip"]
    check = clip["io"]["verification"]
    assert check["bit_exact"] and check["mismatches"] == 0 and check["samples"] == 2 and "pitch 64" in check["inputs"]
    assert clip["io"]["input"]["datatype"] == "UINT8" and clip["io"]["input"]["layout"] == "NHWC"
    assert clip["io"]["output"]["shape"] == [1, 10] and clip["io"]["output"]["layout"] == "NC"
    layers = {layer["layer"].rsplit("_", 2)[0] for layer in clip["layers"]}
    assert {"ElementwiseMul", "StreamingConcat", "ElementwiseAdd", "GlobalAccPool", "MVAU", "Thresholding",
            "VVAU", "Reshape", "DuplicateStreams"} <= layers  # fmt: skip
    assert clip["estimated_fps"] > 30 and report["estimated_fps"] == pytest.approx(clip["estimated_fps"], abs=0.01)
    # the grouped convs store only their groups' weights (the dense lowering needed 137% of the BRAM at W8)
    assert report["fits"] is True and report["utilization"]["BRAM_18K"] < 0.7
    from qonnx.core.modelwrapper import ModelWrapper

    models = out / "clip" / "intermediate_models"
    partition = ModelWrapper(str(next(models.glob("*_step_create_dataflow_partition.onnx"))))
    assert all(n.domain.startswith("finn.custom_op.fpgadataflow") for n in partition.graph.node)
    hw = ModelWrapper(str(next(models.glob("*_step_lower_grouped_convs.onnx"))))
    lowered = [n for n in hw.graph.node if n.op_type == "VVAU" and n.name.startswith("VVAU_MVAU")]  # not the pools
    vvau_weights = sum(hw.get_initializer(n.input[1]).size for n in lowered)
    assert len(lowered) == 5 * 4  # one VVAU per output of a group (group width 4)
    grouped = [m.weight for m in qmodel.modules() if isinstance(m, torch.nn.Conv2d) and 1 < m.groups < m.in_channels]
    assert len(grouped) == 5 and vvau_weights == sum(w.numel() for w in grouped)
    assert not any(n.op_type == "MVAU" and hw.find_producer(n.input[0]).op_type == "ConvolutionInputGenerator"
                   and hw.get_initializer(n.input[1]).shape[0] == 9 * hw.get_initializer(n.input[1]).shape[1]
                   for n in hw.graph.node)  # fmt: skip
    assert partition.get_tensor_shape(partition.graph.input[0].name) == [1, 128, 32, 3]  # 2 frames, pitch 64, NHWC
    assert (out / "qonnx" / "clip.onnx").is_file()
    _sevnet_clip_streams_and_deploys(out)
    _hw_graph_evaluates_like_the_stream(out, tmp_path, capsys)


@pytest.mark.slow
def test_sevnet_with_group_width_8_lowers_its_grouped_convs_bit_exact(tmp_path):
    """sevnet_edge with groups of width 8 (2x32x32, W8A4): each grouped conv (stride 1 and 2) becomes 8 depthwise
    VVAUs holding its own weights, and the HW graph equals the QONNX model bit for bit."""
    import torch
    from qonnx.core.modelwrapper import ModelWrapper

    from vidconv_edge.hw.source import calibrated_for_board
    from vidconv_edge.models import create_model
    from vidconv_edge.quant.bits import make_bits
    from vidconv_edge.quant.model import save_quant_checkpoint

    torch.manual_seed(1)
    model = create_model("sevnet_edge", img_size=32, frames=2, group_width=8).eval()
    qmodel = calibrated_for_board(model, make_bits(8, act_bits=4))
    save_quant_checkpoint(tmp_path / "sev8.pt", qmodel, [str(i) for i in range(10)])
    report = build_fpga(tmp_path / "sev8.pt", "pynq-z2", tmp_path / "b", until="verify_hw_python", log=lambda _m: None)
    check = report["parts"]["clip"]["io"]["verification"]
    assert report["verified"] is True and check["bit_exact"] and check["mismatches"] == 0
    hw = ModelWrapper(str(next((tmp_path / "b" / "clip" / "intermediate_models").glob("*_step_lower_grouped_convs.onnx"))))
    lowered = [n for n in hw.graph.node if n.op_type == "VVAU" and n.name.startswith("VVAU_MVAU")]
    grouped = [m for m in qmodel.modules() if isinstance(m, torch.nn.Conv2d) and 1 < m.groups < m.in_channels]
    assert {m.stride for m in grouped} == {(1, 1), (2, 2)} and len(lowered) == 8 * len(grouped)
    assert sum(hw.get_initializer(n.input[1]).size for n in lowered) == sum(m.weight.numel() for m in grouped)


def _hw_graph_evaluates_like_the_stream(out, tmp_path, capsys) -> None:
    """``eval BUILD --backend finn-sim``: the verified HW graph scores clips; its logits are the stream's."""
    import shutil

    import torch

    from vidconv_edge.apps.artifacts import HwGraphModel, load_eval_model
    from vidconv_edge.assets import sample_video
    from vidconv_edge.stream import open_backend

    model, meta = load_eval_model(out)
    assert isinstance(model, HwGraphModel) and meta["model"] == "sevnet_edge" and model.input_spec.frames == 2
    clip = torch.from_numpy(_preprocessed_frames(model.input_spec, [5, 6]))[None]
    expected = open_backend(out, "finn-sim").full(clip.numpy())
    assert np.array_equal(model(clip).numpy(), expected)
    data = tmp_path / "evaldata"
    data.mkdir()
    shutil.copy(sample_video(), data / "a.mp4")
    (data / "test.txt").write_text("a.mp4 3\n")
    assert main(["eval", str(out), "--data", str(data), "--list", str(data / "test.txt"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["backend"] == "finn-sim" and result["num_samples"] == 1 and result["precision"] == "W8A4"
    with pytest.raises(UserError, match="--backend finn-sim runs a build-fpga folder"):
        load_eval_model(data / "a.mp4", "finn-sim")


def _sevnet_clip_streams_and_deploys(out) -> None:
    """The clip accelerator streams (finn-sim: the verified HW graph on the last 2 frames per output, equal to the
    QONNX model on the same stacked frames) and deploys (manifest ``stack``; the board host side through packed
    buffers gives the same logits)."""
    import shutil

    from vidconv_edge.assets import sample_video
    from vidconv_edge.hw.reference import run_qonnx_float64
    from vidconv_edge.stream import open_backend, run_stream
    from vidconv_edge.stream.backends.finn_sim import HwGraph
    from vidconv_edge.stream.backends.integer import stack_frames
    from vidconv_edge.stream.backends.packing import pack, unpack
    from vidconv_edge.stream.backends.pynq_backend import open_pynq

    manifest = json.loads((out / "deploy" / "manifest.json").read_text())
    assert list(manifest["parts"]) == ["clip"] and manifest["parts"]["clip"]["per"] == "clip"
    assert manifest["stack"]["pitch"] == 64 and manifest["stack"]["rows"] == 32 and "collage" not in manifest
    assert "stacked along H with a pitch of 64 rows" in (out / "deploy" / "README.md").read_text()

    sim = open_backend(out, "finn-sim")
    assert sim.whole_clip and sim.input_spec.frames == 2
    preds: list = []
    summary = run_stream(sample_video(), sim, stride=40, progress=False, on_prediction=preds.append)
    assert summary["outputs"] == len(preds) >= 2 and summary["clip_ms_p50"] > 0
    with pytest.raises(UserError, match="runs the whole clip for every output already"):
        run_stream(sample_video(), sim, recompute=True, progress=False)
    scale = manifest["parts"]["clip"]["output"]["scale"]
    for pred in preds:  # every output against the QONNX model on its window
        frames = _preprocessed_frames(sim.input_spec, [pred.frame - 1, pred.frame])  # raw pixels, (2, 3, S, S)
        stacked = stack_frames(frames.transpose(0, 2, 3, 1), 64).transpose(0, 3, 1, 2)
        reference = run_qonnx_float64(out / "qonnx" / "clip.onnx", stacked)
        assert np.array_equal(np.rint(reference / scale), np.rint(pred.logits / scale)[None])

    io = sim.bundle.parts["clip"]
    graph = HwGraph(io.graph)

    def device(part):  # the board's DMA transfer: packed bytes through the verified HW graph
        def run(packed):
            x = unpack(packed.reshape(*io.input.folded_shape[:-1], -1), io.input.datatype, io.input.folded_shape[-1])
            return pack(graph(x.reshape(io.input.shape)).reshape(io.output.folded_shape), io.output.datatype)

        return run

    opened: list = []
    board = open_pynq(out / "deploy", open_device=lambda part: opened.append(part) or device(part))
    assert board.name == "pynq" and board.whole_clip
    on_board: list = []
    summary = run_stream(sample_video(), board, stride=40, progress=False, on_prediction=on_board.append)
    assert [p.frame for p in on_board] == [p.frame for p in preds]
    assert all(np.array_equal(a.logits, b.logits) for a, b in zip(on_board, preds))
    host = summary["host_ms_per_frame"]  # measured where the stream runs: decode, resize, pack, DMA, unpack
    assert set(host) == {"decode", "resize", "pack", "dma", "unpack"} and all(v > 0 for v in host.values())
    # several cameras on the one accelerator: each source's outputs equal its single-source run
    from vidconv_edge.stream import run_streams

    copy = out / "second.mp4"
    shutil.copy(sample_video(), copy)
    got: dict = {}
    multi = run_streams([sample_video(), copy], board, stride=40, progress=False,
                        on_prediction=lambda s, p: got.setdefault(s, []).append(p.logits))  # fmt: skip
    assert len(opened) == 1 and multi["total"]["outputs"] == 2 * len(preds)
    for name in (str(sample_video()), str(copy)):
        assert all(np.array_equal(a, b.logits) for a, b in zip(got[name], preds))
    assert set(multi["total"]["host_ms_per_frame"]) == set(host)


def _preprocessed_frames(spec, indices: list[int]) -> np.ndarray:
    """Frames ``indices`` of the sample video as the stream's preprocessing gives them (raw pixel values)."""
    from vidconv_edge.assets import sample_video
    from vidconv_edge.stream.preprocess import Preprocessor
    from vidconv_edge.stream.sources import open_source

    prep, src = Preprocessor(spec), open_source(sample_video())
    src.open()
    frames = {f.index: prep(f.image) for f in src.frames() if f.index in indices}
    return np.stack([frames[i] for i in indices])


def test_build_fpga_refuses_squeeze_excitation_with_the_reason(tmp_path, capsys):
    from vidconv_edge.checkpoint import save_checkpoint
    from vidconv_edge.models import create_model

    save_checkpoint(tmp_path / "se.pt", create_model("sevnet_edge", se=True, img_size=32), [str(i) for i in range(10)])
    assert main(["build-fpga", str(tmp_path / "se.pt"), "--out", str(tmp_path / "b")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "squeeze-excitation, which cannot be built for the FPGA" in err
    assert "whole clip" in err and "PWPolyF" in err and "without SE" in err


@pytest.mark.slow
def test_default_build_of_the_bundled_model_meets_the_acceptance(tmp_path):
    """No model, pynq-z2: the bundled vic_edge's W8A4 QAT form, one merged design, fits at <= 80%, >= 30 fps,
    both pipelines bit-exact against the QONNX reference on frames of the sample video."""
    report = build_fpga(None, "pynq-z2", tmp_path / "b", log=lambda _m: None)
    assert report["verified"] is True and report["fits"] is True and report["design"] == "merged"
    from vidconv_edge.apps.artifacts import load_eval_model
    from vidconv_edge.assets import default_checkpoint
    from vidconv_edge.checkpoint import load_checkpoint

    _, meta = load_eval_model(tmp_path / "b", "finn-sim")  # evaluating the build samples clips as the checkpoint
    from vidconv_edge.train.config import recipe_from_dict

    recipe = json.loads(json.dumps(load_checkpoint(default_checkpoint())["recipe"]))  # as the ONNX metadata holds it
    assert recipe_from_dict(meta["recipe"]).data == recipe_from_dict(recipe).data  # the same, defaults filled in
    assert meta["recipe"]["data"]["test_stride"] == 2 and meta["recipe"]["data"]["frame_rate"] == 15
    assert all(u <= 0.80 for u in report["utilization"].values()), report["utilization"]
    assert report["estimated_fps"] >= 30
    # README "Both families on the boards", vic_edge pynq-z2 row: FINN's estimates, exactly
    assert report["total"] == {"LUT": 28_776, "BRAM_18K": 161, "URAM": 0, "DSP": 21}
    assert report["utilization"] == {"LUT": 0.6514, "BRAM_18K": 0.7043, "DSP": 0.0955}
    assert report["estimated_fps"] == 37.68
    q = report["quantization"]  # the bundled W8A4 QAT form, with the numbers it was made with
    assert q["checkpoint"] == "vic_edge_w8a4.pt" and "vic_edge_w8a4.pt" in report["weights"]
    assert q["quant_top1"] >= q["float_top1"] - 0.01
    assert (q["heldout"]["correct"], q["heldout"]["n"]) == (381, 420)  # README: 90.7% (381/420, 95% CI 87.6-93.1%)
    assert not (tmp_path / "b" / "quant").exists()  # nothing quantized again
    assert (tmp_path / "b" / "deploy" / "manifest.json").is_file()


def test_bundled_quantized_form_reports_its_held_out_top1_with_interval():
    """build-fpga's ``quantization.heldout`` of the bundled W8A4 form: the stored held-out count, n and interval."""
    from vidconv_edge.assets import ASSETS
    from vidconv_edge.checkpoint import load_checkpoint
    from vidconv_edge.hw.source import bundled_info
    from vidconv_edge.quant.bits import parse_mix
    from vidconv_edge.train.metrics import format_accuracy

    info = bundled_info(load_checkpoint(ASSETS / "sevnet_edge_w8a4.pt"), ASSETS / "sevnet_edge_w8a4.pt", parse_mix("W8A4"))
    assert format_accuracy(info["heldout"]) == "92.9% (390/420, 95% CI 90.0-95.0%)"
    assert info["val_videos"] == 840 and "heldout_top1" not in info
