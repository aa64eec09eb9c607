"""``build_fpga``: QONNX -> FINN -> estimates, verified HW graph, HLS/RTL code; Vivado steps when installed.

Each part (early-net per frame, later-net per collage) is built in ``out_dir/<part>`` by the step list
:data:`STEPS` (FINN builder steps and ours, all ``step(model, cfg)``). ``--part both`` makes them ONE design
(an FPGA holds one bitstream at a time): each part runs :data:`STEPS` up to :data:`MERGE_AFTER` (its own
streamlining, HW conversion, partition and python verification), then ``steps_merge.merge_pipelines`` puts
both HW graphs in one model with two inputs and two outputs, and :data:`MERGED_STEPS` build it once in
``out_dir/merged`` (one accelerator, one bitfile, a two-input/two-output driver). ``--part both-separate``
builds the two accelerators separately (for comparison: two bitfiles that cannot be loaded together).

A quantized SEVNet (no SE) has no early/later split: its FPGA form (``quant.sevnet_fpga``: the clip's frames
stacked along H in one batch-1 tensor, separator rows re-zeroed by row masks) is one accelerator, the part
``clip`` (stacked uint8 clip in, logits out), built by the same :data:`STEPS` in ``out_dir/clip``.

The steps through :data:`SHARED_UNTIL` read neither the target rate nor the clock: the designs of one
``--target-fps max`` search share them (:class:`SharedStart`), each running only the later steps.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from vidconv_edge.errors import UserError
from vidconv_edge.hw.boards import get_board
from vidconv_edge.hw.deploy import CLIP, part_label
from vidconv_edge.hw.vivado import ToolCheck, ToolMissing, boundary_message, check_step, needs_tools

# (step name, module holding it: "finn" = finn.builder.build_dataflow_steps)
STEPS: list[tuple[str, str]] = [
    ("step_uint8_input", "steps_qonnx"),
    ("step_integer_input", "steps_qonnx"),
    ("step_qonnx_to_finn_float64", "steps_qonnx"),
    ("step_tidy_up", "finn"),
    ("step_row_masks", "steps_masks"),
    ("step_vidconv_streamline", "steps_streamline"),
    ("step_integer_io", "steps_streamline"),
    ("step_convert_to_hw", "finn"),
    ("step_mask_datatypes", "steps_masks"),
    ("step_lower_grouped_convs", "steps_grouped"),
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
MERGE_AFTER = "step_verify_hw_python"
_AFTER_MERGE = STEPS[STEP_NAMES.index(MERGE_AFTER) + 1 :]
_ESTIMATES = [n for n, _ in _AFTER_MERGE].index("step_generate_estimate_reports") + 1
MERGED_STEPS: list[tuple[str, str]] = [
    ("step_create_dataflow_partition", "finn"),  # FINN's own partition of the two-pipeline graph: one partition
    ("step_verify_merged_python", "steps_merge"),
    *_AFTER_MERGE[:_ESTIMATES],
    ("step_check_pipelines", "steps_merge"),
    *_AFTER_MERGE[_ESTIMATES:],
]
SHARED_UNTIL = "step_specialize_layers"  # the last step that reads neither the target rate nor the clock
# every step name in flow order (for --until)
ALL_STEP_NAMES = [
    *STEP_NAMES[: STEP_NAMES.index(MERGE_AFTER) + 1], "step_verify_merged_python",
    *[n for n, _ in _AFTER_MERGE[:_ESTIMATES]], "step_check_pipelines", *[n for n, _ in _AFTER_MERGE[_ESTIMATES:]],
]  # fmt: skip
# FINN's Vivado steps only produce what is listed here (they run only when the tools are installed)
GENERATE_OUTPUTS = ["estimate_reports", "stitched_ip", "bitfile", "pynq_driver", "deployment_package"]
# what each step leaves behind, for the "produced so far" message
PRODUCTS = {
    "step_create_dataflow_partition": "dataflow partition",
    "step_verify_hw_python": "bit-exact python verification",
    "step_verify_merged_python": "bit-exact python verification",
    "step_generate_estimate_reports": "estimate reports",
    "step_driver_settings": "finn-plus-driver settings",
    "step_hw_codegen": "HLS/RTL code",
}


@dataclass
class SharedStart:
    """The start the designs of one search share: an empty one is filled by the build given it (its prepared
    source, folder and report); a filled one makes a build of the same source, board, part and options copy
    that build's QONNX files and HW graphs through :data:`SHARED_UNTIL` and run only the later steps."""

    src: object = None  # hw.source.BuildSource
    build_dir: Path | None = None
    report: dict | None = None


def resolve_until(until: str | None) -> str:
    if until is None:
        return STEP_NAMES[-1]
    name = until if until.startswith("step_") else f"step_{until}"
    if name not in ALL_STEP_NAMES:
        raise UserError(f"unknown step '{until}' for --until: choose one of {', '.join(ALL_STEP_NAMES)}")
    return name


def merges(part: str, until: str) -> bool:
    """True when ``part`` builds the merged design and ``until`` reaches past each part's own steps."""
    return part == "both" and ALL_STEP_NAMES.index(until) > ALL_STEP_NAMES.index(MERGE_AFTER)


def asked_for_missing_tools(until: str | None, stopped_at: str | None) -> bool:
    """True when ``--until`` named a step at or past the one that stopped for a missing tool (non-zero exit)."""
    if until is None or stopped_at is None:
        return False
    return ALL_STEP_NAMES.index(resolve_until(until)) >= ALL_STEP_NAMES.index(stopped_at)


def _step_function(name: str, module: str):
    import importlib

    if module == "finn":
        import finn.builder.build_dataflow_steps as finn_steps

        return getattr(finn_steps, name)
    return getattr(importlib.import_module(f"vidconv_edge.hw.{module}"), name)


def make_config(part_src, board, part_dir: Path, target_fps: float, clock_ns: float, samples: int, strict: bool,
                used: dict):  # fmt: skip
    """The ``HwBuildConfig`` of one part (``part_src`` None: the merged design, verified per part)."""
    import numpy as np

    from vidconv_edge.hw.config import HwBuildConfig

    part_dir.mkdir(parents=True, exist_ok=True)
    if part_src is None:
        return HwBuildConfig(
            output_dir=str(part_dir), synth_clk_period_ns=float(clock_ns), target_fps=int(round(target_fps)),
            fpga_part=board.part, board=board.finn_board, shell_flow_type=board.shell_flow,
            generate_outputs=GENERATE_OUTPUTS, standalone_thresholds=True, save_intermediate_models=True,
            part_name="merged", verify_samples=samples, strict_verify=strict, lut_capacity=board.lut,
            bram_capacity=board.bram_18k, uram_capacity=board.uram, merged_parts=used,
        )  # fmt: skip
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
        uram_capacity=board.uram, lut_used=used["LUT"], bram_used=used["BRAM_18K"], uram_used=used["URAM"],
    )  # fmt: skip


def run_steps(model, steps: list[tuple[str, str]], cfg, until: str, shell_flow: str, log, start: int = 0,
              done: dict | None = None) -> tuple[object, dict]:  # fmt: skip
    """Run ``steps[start:]`` on ``model`` up to ``until`` or the first step whose tools are missing; ``done``:
    the ``steps`` and ``produced`` records of the steps before ``start``."""
    inter = Path(cfg.output_dir) / "intermediate_models"
    inter.mkdir(parents=True, exist_ok=True)
    result: dict = {"steps": [], "produced": [], **(done or {}), "stopped": None}
    for i, (name, module) in enumerate(steps[start:], start):
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
            result["produced"].append(f"{PRODUCTS[name]} ({part_label(cfg.part_name)})")
        if name == until:
            break
    return model, result


def copy_models(earlier: Path, part_dir: Path, through: int) -> None:
    """Copy the intermediate models of steps 0..``through`` of the build folder ``earlier`` into ``part_dir``."""
    inter = part_dir / "intermediate_models"
    inter.mkdir(parents=True, exist_ok=True)
    for f in sorted((earlier / "intermediate_models").glob("[0-9]*_step_*.onnx")):
        if int(f.name.split("_", 1)[0]) <= through:
            shutil.copyfile(f, inter / f.name)


def continue_shared(earlier_dir: Path, earlier: dict, steps: list[tuple[str, str]], cfg, until: str, shell_flow: str,
                    log) -> tuple[object, dict]:  # fmt: skip
    """Run ``steps`` after :data:`SHARED_UNTIL` (none if ``until`` comes first: a part of a merged design) on the
    model an earlier build of the same design (folder ``earlier_dir``, report entry ``earlier``) left there, with
    what the shared steps recorded: their step entries (``shared: true``), products, stream formats and
    verification; (last model, result)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from vidconv_edge.hw.partio import PartIO, StreamFormat

    names = [name for name, _ in steps]
    k = min(names.index(SHARED_UNTIL), names.index(until))
    copy_models(earlier_dir, Path(cfg.output_dir), k)
    model = ModelWrapper(str(Path(cfg.output_dir) / "intermediate_models" / f"{k:02d}_{names[k]}.onnx"))
    io = PartIO.from_json(earlier["io"], str(earlier_dir), "io")

    def unfolded(stream: StreamFormat) -> StreamFormat:  # the folding is the later steps' (driver settings)
        return replace(stream, folded_shape=None, packed_shape=None)

    cfg.io = PartIO(input=unfolded(io.input), output=unfolded(io.output), verification=io.verification)
    shared = names[: k + 1]
    done = {"steps": [{**s, "shared": True} for s in earlier["steps"] if s["step"] in shared],
            "produced": [f"{PRODUCTS[n]} ({part_label(cfg.part_name)})" for n in shared if n in PRODUCTS]}  # fmt: skip
    model, result = run_steps(model, steps[: names.index(until) + 1], cfg, until, shell_flow, log, start=k + 1, done=done)
    result["shared_from"] = str(earlier_dir)
    return model, result


def run_part(part_src, cfg, until: str, shell_flow: str, log, shared: SharedStart | None = None) -> tuple[object, dict]:
    """Run :data:`STEPS` on one part up to ``until`` (or a missing tool); (last model, result). ``shared``: only
    the steps after :data:`SHARED_UNTIL`, on that build's model."""
    from qonnx.core.modelwrapper import ModelWrapper

    if shared is None:
        model, result = run_steps(ModelWrapper(str(part_src.qonnx)), STEPS, cfg, until, shell_flow, log)
    else:
        name = part_src.part
        model, result = continue_shared(shared.build_dir / name, shared.report["parts"][name], STEPS, cfg, until,
                                        shell_flow, log)  # fmt: skip
    io = cfg.io
    if io.verification is not None:
        io.verification.update(part_src.reference)
    result["io"] = io.to_json()
    result["verified"] = bool((io.verification or {}).get("bit_exact", False))
    return model, result


def run_merged(models: dict, parts: dict, cfg, until: str, shell_flow: str, log, shared: SharedStart | None = None) -> dict:
    """Merge the parts' verified HW graphs into one two-pipeline model and run :data:`MERGED_STEPS` on it
    (``shared``: only the steps after :data:`SHARED_UNTIL`, on that build's merged model); updates each part's
    report entry (verification on the merged graph, folded streams, its layers' estimates, its input/output
    index); returns the merged design's result."""
    from vidconv_edge.hw.partio import PartIO
    from vidconv_edge.hw.report import read_part_reports, split_by_pipeline
    from vidconv_edge.hw.steps_merge import merge_pipelines

    # the per-pipeline split of the estimates (step_check_pipelines) belongs to the estimates
    stop = "step_check_pipelines" if until == "step_generate_estimate_reports" else until
    if shared is None:
        log(f"[merged] merging the {' and '.join(models)} pipelines into one design")
        model = merge_pipelines(models)
        model.save(str(Path(cfg.output_dir) / "merged_hw_graph.onnx"))
        _, result = run_steps(model, MERGED_STEPS, cfg, stop, shell_flow, log)
    else:
        shutil.copyfile(shared.build_dir / "merged" / "merged_hw_graph.onnx", Path(cfg.output_dir) / "merged_hw_graph.onnx")
        _, result = continue_shared(shared.build_dir / "merged", shared.report["merged"], MERGED_STEPS, cfg, stop,
                                    shell_flow, log)  # fmt: skip
    io = cfg.io
    result["io"] = replace(io, pipelines=None).to_json()  # the layers are in each part's entry
    result["verified"] = bool((io.verification or {}).get("bit_exact", False))
    result["parts"] = list(models)
    for i, name in enumerate(models):
        part = parts[name]
        part_io = PartIO.from_json(part["io"], "the build report", f"parts.{name}.io")
        merged_check = (io.verification or {}).get("parts", {}).get(name)
        if merged_check is not None:
            part_io.verification = {**(part_io.verification or {}), "merged_design": merged_check}
            part["verified"] = part["verified"] and merged_check["bit_exact"]
        if io.inputs is not None:
            part_io.input = part_io.input.updated(io.inputs[i])
        if io.outputs is not None:
            part_io.output = part_io.output.updated(io.outputs[i])
        part["io"] = part_io.to_json()
        part.update(accelerator="merged", input_index=i, output_index=i)
    report_dir = Path(cfg.output_dir) / "report"
    if io.pipelines is not None and (report_dir / "estimate_network_performance.json").is_file():
        whole = read_part_reports(report_dir)
        result.update({k: whole[k] for k in ("total", "max_cycles", "bottleneck", "estimated_fps", "latency_ms")})
        for name, split in split_by_pipeline(whole, io.pipelines, cfg.synth_clk_period_ns).items():
            parts[name].update(split)
            parts[name]["layers_in"] = "merged"
    return result


def shared_source(shared: SharedStart, board: str, part: str, clock: float, out: Path):
    """The prepared source of ``shared`` with its QONNX files copied to ``out/qonnx`` (a build folder holds its
    own); ValueError if the earlier build was for another board, part or clock."""
    earlier = shared.report
    same_part = earlier["part"] == part or (earlier["part"] == CLIP and part == "both")  # a SEVNet's "both"
    if (earlier["board"], earlier["clock_ns"]) != (board, clock) or not same_part:
        raise ValueError(f"a shared start is for {earlier['board']} --part {earlier['part']} at {earlier['clock_ns']} "
                         f"ns, not {board} --part {part} at {clock} ns")  # fmt: skip
    shutil.copytree(shared.build_dir / "qonnx", out / "qonnx", dirs_exist_ok=True)
    src = shared.src
    return replace(src, parts={n: replace(p, qonnx=out / "qonnx" / p.qonnx.name) for n, p in src.parts.items()})


def deploy_bundle(report: dict, src, out: Path) -> dict:
    """Write ``out/deploy`` when every accelerator got its driver settings; what was written (or why not)."""
    from vidconv_edge.hw.deploy import load_deploy_manifest, write_deploy_bundle

    def has_settings(result: dict) -> bool:
        return any(s["step"] == "step_driver_settings" for s in result["steps"])

    if report.get("design") == "merged":
        if not has_settings(report.get("merged", {"steps": []})):
            return {"written": False, "why": "the merged design's build stopped before step_driver_settings"}
    else:
        short = [n for n, p in report["parts"].items() if not has_settings(p)]
        if short:
            return {"written": False, "why": f"the {', '.join(short)} part build stopped before step_driver_settings"}
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
    test: str | os.PathLike | None = None,
    log=print,
    shared: SharedStart | None = None,
) -> dict:
    """Build ``source`` for ``board`` into ``out_dir``; returns the report (also ``out_dir/report.json``) and
    writes the deploy bundle ``out_dir/deploy`` once every part has its driver settings.

    ``source``: a quantized checkpoint (VidConv edge, or SEVNet without SE: one ``clip`` accelerator); a float
    one (None: the bundled vic_edge), quantized at ``precision`` (default: the board's) on ``data`` (default: a
    generated synthetic set) with ``qat_epochs`` of QAT; or a part's QONNX file. ``part``: ``early``, ``later``,
    ``both`` (one design holding both pipelines, built in ``out_dir/merged``), ``both-separate`` (two
    accelerators) or ``clip`` (a SEVNet's one accelerator, also built for ``both``). ``test``: a held-out set
    (``vidconv_edge.train.heldout``): the quantized model's top-1 on it goes into ``quantization.heldout``.
    ``shared``: a :class:`SharedStart` to fill (an empty one) or to continue from (the source, ``data``,
    ``precision``, ``test`` and ``verify_samples`` of the build that filled it apply).

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
    if part != "both" and stop not in STEP_NAMES:
        raise UserError(f"--until {until} is a step of the merged design: it needs --part both")
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
    past_shared = ALL_STEP_NAMES.index(stop) > ALL_STEP_NAMES.index(SHARED_UNTIL)
    reuse = shared if shared is not None and shared.src is not None and past_shared else None
    if reuse is not None:
        src = shared_source(reuse, b.name, part, clock, out)
        log(f"continuing the design of {reuse.build_dir} after {SHARED_UNTIL}")
    else:
        log(f"preparing the model (--part {part}): QONNX export and reference outputs on a video clip")
        src = prepare_source(source, b, out, part, verify_samples, video, data, qat_epochs, log, precision, test)
    if CLIP in src.parts:  # a whole-clip model: one accelerator, nothing to merge
        part = CLIP
    report: dict = {
        "board": b.name, "board_info": b.to_dict(), "part": part, "model": src.model, "bits": src.bits,
        "board_precision": b.precision, "weights": src.origin, "clock_ns": clock, "target_fps": fps,
        "until": stop, "quantization": src.quantization, "parts": {},
    }  # fmt: skip
    merged = merges(part, stop)
    report["design"] = "merged" if part == "both" else "separate"
    used = {"LUT": 0.0, "BRAM_18K": 0.0, "URAM": 0.0}
    models = {}
    for name, part_src in src.parts.items():
        cfg = make_config(part_src, b, out / name, fps, clock, verify_samples, strict_verify, used)
        models[name], result = run_part(part_src, cfg, MERGE_AFTER if merged else stop, b.shell_flow, log, reuse)
        report_dir = Path(cfg.output_dir) / "report"
        if (report_dir / "estimate_network_performance.json").is_file() and any(
            s["step"] == "step_generate_estimate_reports" for s in result["steps"]
        ):
            result.update(read_part_reports(report_dir))
            used = {k: used[k] + result["total"][k] for k in used}
        report["parts"][name] = result
    if merged:
        files = {
            n: {"verify_input_npy": str(out / n / "verify_input.npy"),
                "verify_expected_output_npy": str(out / n / "verify_expected_output.npy")}
            for n in src.parts
        }  # fmt: skip
        cfg = make_config(None, b, out / "merged", fps, clock, verify_samples, strict_verify, files)
        report["merged"] = run_merged(models, report["parts"], cfg, stop, b.shell_flow, log, reuse)
    parts = report["parts"]
    builds = [*parts.values(), *([report["merged"]] if merged else [])]
    report.update(combine(parts, b, src.bits, merged=part == "both"))
    report["verified"] = all(p["verified"] for p in builds)
    pixels = src.img_size * src.img_size  # one pixel per cycle: frames/s (collages/s), or clips/s below
    if part == CLIP:
        from vidconv_edge.quant.sevnet_fpga import pitch_of

        pixels = src.frames * pitch_of(src.img_size) * src.img_size
    report["dataflow_limit_fps"] = round(1e9 / clock / pixels, 1)
    report["produced"] = [x for p in builds for x in p["produced"]]
    stopped = [p for p in builds if p["stopped"]]
    first = ToolCheck(stopped[0]["stopped_at"], tuple(stopped[0]["missing_tools"])) if stopped else None
    report["stopped"] = boundary_message(first, report["produced"]) if first else None
    report["flow_seconds"] = round(time.perf_counter() - t0, 1)
    report["deploy"] = deploy_bundle(report, src, out)
    write_report(report, out / "report.json")
    if shared is not None and shared.src is None:
        shared.src, shared.build_dir, shared.report = src, out, report
    if stopped and asked_for_missing_tools(until, stopped[0]["stopped_at"]):
        raise ToolMissing(f"--until {stop}: {report['stopped']} (report: {out / 'report.json'})")
    return report
