"""``build_fpga``: QONNX -> FINN -> estimates, verified HW graph, HLS/RTL code; Vivado steps when installed.

Each part (early-net per frame, later-net per collage) is its own accelerator, built in ``out_dir/<part>``
by the step list :data:`STEPS` (FINN builder steps and ours, all ``step(model, cfg)``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from vidconv_edge.errors import UserError
from vidconv_edge.hw.boards import get_board
from vidconv_edge.hw.vivado import ToolCheck, ToolMissing, boundary_message, check_step, needs_tools

# (step name, module holding it: "finn" = finn.builder.build_dataflow_steps)
STEPS: list[tuple[str, str]] = [
    ("step_uint8_input", "steps_qonnx"),
    ("step_integer_input", "steps_qonnx"),
    ("step_qonnx_to_finn", "finn"),
    ("step_tidy_up", "finn"),
    ("step_vidconv_streamline", "steps_streamline"),
    ("step_integer_io", "steps_streamline"),
    ("step_convert_to_hw", "finn"),
    ("step_check_all_hw", "steps_checks"),
    ("step_create_dataflow_partition", "finn"),
    ("step_verify_hw_python", "steps_verify"),
    ("step_specialize_layers", "finn"),
    ("step_target_fps_parallelization", "finn"),
    ("step_minimize_bit_width", "finn"),
    ("step_widen_binary_weights", "steps_codegen"),
    ("step_memory_styles", "steps_folding"),
    ("step_generate_estimate_reports", "finn"),
    ("step_driver_settings", "steps_driver"),
    ("step_hw_codegen", "finn"),
    ("step_hw_ipgen", "finn"),
    ("step_set_fifo_depths", "finn"),
    ("step_create_stitched_ip", "finn"),
    ("step_measure_rtlsim_performance", "finn"),
    ("step_synthesize_bitfile", "finn"),
    ("step_make_driver", "finn"),
    ("step_deployment_package", "finn"),
]
STEP_NAMES = [name for name, _ in STEPS]
# FINN's Vivado steps only produce what is listed here (they run only when the tools are installed)
GENERATE_OUTPUTS = ["estimate_reports", "stitched_ip", "bitfile", "pynq_driver", "deployment_package"]
# what each step leaves behind, for the "produced so far" message
PRODUCTS = {
    "step_create_dataflow_partition": "dataflow partition",
    "step_verify_hw_python": "bit-exact python verification",
    "step_generate_estimate_reports": "estimate reports",
    "step_driver_settings": "finn-plus-driver settings",
    "step_hw_codegen": "HLS/RTL code",
}


def resolve_until(until: str | None) -> str:
    if until is None:
        return STEP_NAMES[-1]
    name = until if until.startswith("step_") else f"step_{until}"
    if name not in STEP_NAMES:
        raise UserError(f"unknown step '{until}' for --until: choose one of {', '.join(STEP_NAMES)}")
    return name


def asked_for_missing_tools(until: str | None, stopped_at: str | None) -> bool:
    """True when ``--until`` named a step at or past the one that stopped for a missing tool (non-zero exit)."""
    if until is None or stopped_at is None:
        return False
    return STEP_NAMES.index(resolve_until(until)) >= STEP_NAMES.index(stopped_at)


def _step_function(name: str, module: str):
    import importlib

    if module == "finn":
        import finn.builder.build_dataflow_steps as finn_steps

        return getattr(finn_steps, name)
    return getattr(importlib.import_module(f"vidconv_edge.hw.{module}"), name)


def make_config(part_src, board, part_dir: Path, target_fps: float, clock_ns: float, samples: int, strict: bool,
                used: dict):  # fmt: skip
    """The ``HwBuildConfig`` of one part."""
    import numpy as np

    from vidconv_edge.hw.config import HwBuildConfig

    part_dir.mkdir(parents=True, exist_ok=True)
    vin, vout = part_dir / "verify_input.npy", part_dir / "verify_expected_output.npy"
    np.save(vin, part_src.verify_in)
    np.save(vout, part_src.verify_out)
    return HwBuildConfig(
        output_dir=str(part_dir), synth_clk_period_ns=float(clock_ns), target_fps=int(round(target_fps)),
        fpga_part=board.part, board=board.finn_board, shell_flow_type=board.shell_flow,
        generate_outputs=GENERATE_OUTPUTS, standalone_thresholds=True, save_intermediate_models=True,
        verify_input_npy=str(vin), verify_expected_output_npy=str(vout),
        part_name=part_src.part, input_scale=part_src.input_scale, input_datatype=part_src.input_datatype,
        verify_samples=samples, strict_verify=strict, lut_capacity=board.lut, bram_capacity=board.bram_18k,
        lut_used=used["LUT"], bram_used=used["BRAM_18K"],
    )  # fmt: skip


def run_part(part_src, cfg, until: str, shell_flow: str, log) -> dict:
    """Run the steps on one part up to ``until`` or the first step whose tools are missing."""
    from qonnx.core.modelwrapper import ModelWrapper

    model = ModelWrapper(str(part_src.qonnx))
    inter = Path(cfg.output_dir) / "intermediate_models"
    inter.mkdir(parents=True, exist_ok=True)
    result: dict = {"steps": [], "produced": [], "stopped": None}
    for i, (name, module) in enumerate(STEPS):
        if needs_tools(name):
            check = check_step(name, shell_flow)
            if not check.ok:
                result["stopped"] = boundary_message(check, result["produced"])
                result["missing_tools"] = list(check.missing)
                result["stopped_at"] = name
                break
        t0 = time.perf_counter()
        log(f"[{cfg.part_name}] {name}")
        model = _step_function(name, module)(model, cfg)
        seconds = round(time.perf_counter() - t0, 2)
        result["steps"].append({"step": name, "seconds": seconds})
        model.save(str(inter / f"{i:02d}_{name}.onnx"))
        if name in PRODUCTS:
            result["produced"].append(f"{PRODUCTS[name]} ({cfg.part_name}-net)")
        if name == until:
            break
    result["io"] = dict(cfg.io)
    if "verification" in result["io"]:
        result["io"]["verification"].update(part_src.reference)
    result["verified"] = bool(cfg.io.get("verification", {}).get("bit_exact", False))
    return result


def deploy_bundle(report: dict, src, out: Path) -> dict:
    """Write ``out/deploy`` when every part got its driver settings; what was written (or why not)."""
    from vidconv_edge.hw.deploy import load_deploy_manifest, write_deploy_bundle

    short = [n for n, p in report["parts"].items() if not any(s["step"] == "step_driver_settings" for s in p["steps"])]
    if short:
        return {"written": False, "why": f"the {', '.join(short)}-net build stopped before step_driver_settings"}
    path = write_deploy_bundle(report, src, out)
    return {"written": True, "path": str(path), "missing": load_deploy_manifest(path)["missing"]}


def build_fpga(
    source: str | os.PathLike | None,
    board: str,
    out_dir: str | os.PathLike,
    target_fps: float | None = None,
    clock_ns: float | None = None,
    part: str = "both",
    until: str | None = None,
    verify_samples: int = 2,
    video: str | os.PathLike | None = None,
    strict_verify: bool = True,
    data: str | os.PathLike | None = None,
    qat_epochs: int = 0,
    precision: str | None = None,
    log=print,
) -> dict:
    """Build ``source`` for ``board`` into ``out_dir``; returns the report (also ``out_dir/report.json``) and
    writes the deploy bundle ``out_dir/deploy`` once every part has its driver settings.

    ``source``: a quantized checkpoint; a float one (None: the bundled vic_edge), quantized at ``precision``
    (default: the board's) on ``data`` (default: a generated synthetic set) with ``qat_epochs`` of QAT; or a
    part's QONNX file.

    Raises ToolMissing after writing the report when ``until`` asked for a step whose Xilinx tool is absent,
    VerificationFailed when the HW graph is not bit-exact (``strict_verify=False``: reported as ``verified: false``),
    NotInHardware when a node stays outside the partition.
    """
    from vidconv_edge.hw.finn_env import apply_finn_environment
    from vidconv_edge.hw.report import combine, read_part_reports, write_report
    from vidconv_edge.hw.source import parts_of, prepare_source

    b = get_board(board)
    stop = resolve_until(until)
    parts_of(part)
    fps = 30.0 if target_fps is None else float(target_fps)
    clock = b.clock_ns if clock_ns is None else float(clock_ns)
    if fps <= 0 or clock <= 0:
        raise UserError(f"--target-fps and --clock-ns must be positive, got {fps} and {clock}")
    if verify_samples < 1:
        raise UserError(f"verify_samples must be >= 1, got {verify_samples}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    apply_finn_environment(out)
    t0 = time.perf_counter()
    log(f"preparing {part} part(s): QONNX export and reference outputs on a video clip")
    src = prepare_source(source, b, out, part, verify_samples, video, data, qat_epochs, log, precision)
    report: dict = {
        "board": b.name, "board_info": b.to_dict(), "part": part, "model": src.model, "bits": src.bits,
        "board_precision": b.precision, "weights": src.origin, "clock_ns": clock, "target_fps": fps,
        "until": stop, "quantization": src.quantization, "parts": {},
    }  # fmt: skip
    used = {"LUT": 0.0, "BRAM_18K": 0.0}
    for name, part_src in src.parts.items():
        cfg = make_config(part_src, b, out / name, fps, clock, verify_samples, strict_verify, used)
        result = run_part(part_src, cfg, stop, b.shell_flow, log)
        report_dir = Path(cfg.output_dir) / "report"
        if (report_dir / "estimate_network_performance.json").is_file() and any(
            s["step"] == "step_generate_estimate_reports" for s in result["steps"]
        ):
            result.update(read_part_reports(report_dir))
            used = {k: used[k] + result["total"][k] for k in used}
        report["parts"][name] = result
    parts = report["parts"]
    report.update(combine(parts, b, src.bits))
    report["verified"] = all(p["verified"] for p in parts.values())
    pixels = src.img_size * src.img_size
    report["dataflow_limit_fps"] = round(1e9 / clock / pixels, 1)
    report["produced"] = [x for p in parts.values() for x in p["produced"]]
    stopped = [p for p in parts.values() if p["stopped"]]
    first = ToolCheck(stopped[0]["stopped_at"], tuple(stopped[0]["missing_tools"])) if stopped else None
    report["stopped"] = boundary_message(first, report["produced"]) if first else None
    report["flow_seconds"] = round(time.perf_counter() - t0, 1)
    report["deploy"] = deploy_bundle(report, src, out)
    write_report(report, out / "report.json")
    if stopped and asked_for_missing_tools(until, stopped[0]["stopped_at"]):
        raise ToolMissing(f"--until {stop}: {report['stopped']} (report: {out / 'report.json'})")
    return report
