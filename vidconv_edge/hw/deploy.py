"""The deploy bundle ``DIR/deploy/``: everything to copy to the board.

Layout::

    deploy/
      manifest.json            what the board-side host app reads (format below)
      README.md                the steps on the board
      merged/settings.json     --part both (default): ONE accelerator holding both pipelines, its two-input,
      merged/finn-accel.bit    two-output finn-plus-driver settings (input/output 0 = early-net, 1 = later-net)
      merged/finn-accel.hwh    and its bitfile + hardware handoff when Vivado built them;
                               --part both-separate / early / later: one folder per part instead:
      early/settings.json      finn-plus-driver settings of the early-net accelerator
      early/finn-accel.bit     bitfile + hardware handoff, when Vivado built them (else listed in "missing");
      early/finn-accel.hwh     an Alveo board (vitis_alveo shell) gets early/finn-accel.xclbin instead
      later/...                the same for the later-net; or, when it runs on the ARM cores,
      later/later.qonnx.onnx   its QONNX model (execute with qonnx; input = integers * scale)

``manifest.json`` (format ``vidconv-edge-deploy``, version 1; paths relative to the manifest's folder)::

    {
      "format": "vidconv-edge-deploy", "version": 1, "written_by": "vidconv-edge 0.x",
      "model": "vic_edge", "class_names": ["...", ...], "bits": "W8A4",
      "frames": 9, "size": 96, "layout": [3, 3],           # clip length L, frame side, collage grid (h, w)
      "frame_rate": 15.0,                                  # of the clips the model learnt (null: unknown)
      "input_spec": {"frames": 9, "size": 96, "layout": [3, 3], "color": "RGB", "dtype": "uint8",
                     "normalization": "...folded into the early-net: feed raw pixels 0..255",
                     "float_mean": [...], "float_std": [...]},   # what the float model was trained with
      "collage": {"layout": [3, 3], "tile": [12, 12], "order": "...", "shape": [1, 36, 36, 32]},
      "board": {"name": "pynq-z2", "part": "xc7z020clg400-1", "clock_ns": 10.0, "shell_flow": "vivado_zynq"},
      "placement": {"early": "fabric", "later": "fabric" | "arm", "why": "..."},
      "accelerators": {"merged": {"parts": ["early", "later"], "inputs": ["early", "later"],   # merged design only
                                  "outputs": ["early", "later"], "bitfile": "merged/finn-accel.bit" | null,
                                  "hwh": ..., "driver_settings": "merged/settings.json"}},
      "parts": {
        "early": {
          "runs_on": "fabric", "per": "frame",
          "input":  {"shape": [1, 96, 96, 3], "layout": "NHWC", "datatype": "UINT8", "scale": 1.0,
                     "zero_point": 0.0, "folded_shape": [...], "packed_shape": [...], "what": "RGB pixels 0..255"},
          "output": {"shape": [1, 12, 12, 32], "layout": "NHWC", "datatype": "INT4", "scale": 0.13,
                     "zero_point": 0.0, "folded_shape": [...], "packed_shape": [...], "what": "early-net features"},
          "driver_settings": "early/settings.json", "bitfile": "early/finn-accel.bit" | null,
          "hwh": "early/finn-accel.hwh" | null, "estimated_fps": 170.2, "verified": true,
          "accelerator": "merged", "input_index": 0, "output_index": 0   # merged design: the files above are
        },                                                               # the merged accelerator's
        "later": {"runs_on": "fabric", "per": "collage", "input": {...}, "output": {... "layout": "NC" ...},
                  ...,  # when "runs_on" is "arm": "onnx": "later/later.qonnx.onnx", "onnx_format": "qonnx"}
      },
      "dequantize": "real value = scale * (integer - zero_point)",
      "estimated_fps": 37.7, "fits": true, "verified": true,
      "missing": [{"file": "early/finn-accel.bit", "why": "..."}]   # empty when complete
    }

A whole-clip model (SEVNet's FPGA form, ``build-fpga --part clip``) has one part, ``clip`` (``"per": "clip"``,
input ``[1, frames*pitch, size, 3]`` uint8 NHWC, output the logits), no ``collage``, and instead::

      "stack": {"frames": 8, "rows": 96, "pitch": 128, "shape": [1, 1024, 96, 3],
                "order": "frame i of the window (oldest first) at rows i*pitch .. i*pitch + rows - 1; the other rows 0"}

Streams are integers of a FINN datatype in the given layout (the driver packs ``folded_shape`` into
``packed_shape`` bytes). The early-net runs once per frame; the later-net once per window of the last
``frames`` early-net outputs laid out by ``collage``. An FPGA holds one bitstream at a time, so with both
on the fabric they are one design (``--part both``): one bitfile, one driver whose input/output ``i`` is
the part with ``input_index``/``output_index`` ``i``; the two pipelines are independent (each call feeds
one input and reads its own output). Otherwise the later-net runs on the ARM cores.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from vidconv_edge import __version__
from vidconv_edge.errors import UserError
from vidconv_edge.hw.partio import BuildReport, StreamFormat

FORMAT, VERSION = "vidconv-edge-deploy", 1
MANIFEST, README = "manifest.json", "README.md"
BITFILE, HWH, XCLBIN, SETTINGS = "finn-accel.bit", "finn-accel.hwh", "finn-accel.xclbin", "settings.json"
MERGED = "merged"  # the bundle folder (and build folder) of the one design holding both parts
CLIP = "clip"  # the one part of a whole-clip accelerator (SEVNet's FPGA form): stacked clip in, logits out
PER = {"early": "frame", "later": "collage", CLIP: "clip"}  # what one accelerator call processes


def part_label(part: str) -> str:
    """How messages name a part: "early-net", "later-net", "clip accelerator", "merged design"."""
    return {CLIP: "clip accelerator", MERGED: "merged design"}.get(part, f"{part}-net")
STREAM_WHAT = {
    ("early", "input"): "RGB pixels 0..255 of one frame",
    ("early", "output"): "early-net features of that frame",
    ("later", "input"): "collage of the last L early-net outputs",
    ("later", "output"): "logits (quantized)",
    (CLIP, "input"): "RGB pixels 0..255 of the last L frames, stacked along H (see stack)",
    (CLIP, "output"): "logits (quantized)",
}


def _stream(built: StreamFormat, key: str, name: str, fmt: dict) -> dict:
    """A manifest stream: what the build recorded, else the QONNX metadata's integer format ``fmt``."""
    shape = built.shape or fmt.get("shape")
    return StreamFormat(
        shape=shape, layout=built.layout or ("NHWC" if len(shape or []) == 4 else "NC"),
        datatype=built.datatype or fmt.get("datatype"),
        scale=float(built.scale if built.scale is not None else fmt.get("scale", 1.0)),
        zero_point=float(fmt.get("zero_point", 0.0)), folded_shape=built.folded_shape,
        packed_shape=built.packed_shape, what=STREAM_WHAT[(name, key)],
    ).to_json(complete=True)  # fmt: skip


def _bitstreams(shell_flow: str) -> dict[str, str]:
    """The files FINN's bitfile step leaves in ``<part>/bitfile``: Zynq bitfile + hardware handoff, or an Alveo xclbin."""
    return {"bitfile": XCLBIN} if shell_flow == "vitis_alveo" else {"bitfile": BITFILE, "hwh": HWH}


def _finn_outputs(part_dir: Path, shell_flow: str) -> dict[str, Path | None]:
    """What FINN's Vivado steps left in ``part_dir`` (bitfile(s), driver settings), None where absent."""
    found = {k: part_dir / "bitfile" / f for k, f in _bitstreams(shell_flow).items()}
    found["settings"] = part_dir / "driver" / SETTINGS
    return {k: p if p.is_file() else None for k, p in found.items()}


def _accelerator_files(acc_dir: Path, rel_dir: str, shell: str, report: dict, missing: list, files: dict) -> dict:
    """Bundle paths of one accelerator's driver settings and bitfile(s) (None where not built; each missing
    file listed once in ``missing``), adding what exists to ``files``."""
    finn = _finn_outputs(acc_dir, shell)
    entry: dict = {"hwh": None}
    settings = finn["settings"] or (acc_dir / "driver_settings.json")
    wanted = [("driver_settings", f"{rel_dir}/{SETTINGS}", settings if settings.is_file() else None,
               "the build stopped before the folding")]  # fmt: skip
    why = report.get("stopped") or f"the build stopped at --until {report.get('until')}"
    wanted += [(key, f"{rel_dir}/{fname}", finn[key], why) for key, fname in _bitstreams(shell).items()]
    for key, rel, source, why_missing in wanted:
        entry[key] = rel if source is not None else None
        if source is not None:
            files[rel] = source
        elif not any(m["file"] == rel for m in missing):
            missing.append({"file": rel, "why": why_missing})
    return entry


def manifest_for(report: dict, src, out_dir: Path) -> tuple[dict, dict[str, Path]]:
    """The manifest, and the files to copy into the bundle (bundle-relative path -> source path)."""
    placement = report.get("placement", {})
    manifest: dict = {
        "format": FORMAT, "version": VERSION, "written_by": f"vidconv-edge {__version__}",
        "model": src.model, "class_names": list(src.class_names), "bits": src.bits,
        "frames": src.frames, "size": src.img_size, "layout": list(src.layout), "frame_rate": src.frame_rate,
        "input_spec": {
            "frames": src.frames, "size": src.img_size, "layout": list(src.layout), "color": "RGB", "dtype": "uint8",
            "normalization": "folded into the first layer: feed raw pixels 0..255",
            "float_mean": src.float_spec.get("mean"), "float_std": src.float_spec.get("std"),
        },
        "board": {**{k: report["board_info"][k] for k in ("name", "part", "shell_flow")}, "clock_ns": report["clock_ns"]},
        "placement": ({CLIP: "fabric", "why": "one accelerator runs the whole clip"} if CLIP in report["parts"] else
                      {"early": placement.get("early_net", "fabric"), "later": placement.get("later_net", "fabric"),
                       "why": placement.get("why", "")}),
        "parts": {}, "dequantize": "real value = scale * (integer - zero_point)",
        "estimated_fps": report.get("estimated_fps"), "fits": report.get("fits"), "verified": report.get("verified"),
        "missing": [],
    }  # fmt: skip
    files: dict[str, Path] = {}
    built = BuildReport.from_json(report, "the build report").parts
    merged = report.get("design") == "merged"
    shell = report["board_info"]["shell_flow"]
    if merged:
        manifest["accelerators"] = {MERGED: {"parts": list(report["parts"]), "inputs": list(report["parts"]),
                                             "outputs": list(report["parts"])}}  # fmt: skip
    for name, part in built.items():
        fmt = src.part_formats.get(name, {})
        runs_on = manifest["placement"]["later" if name == "later" else name]
        entry = {
            "runs_on": "arm" if runs_on == "arm" else "fabric", "per": PER[name],
            "input": _stream(part.io.input, "input", name, fmt.get("input", {})),
            "output": _stream(part.io.output, "output", name, fmt.get("output", {})),
            "estimated_fps": part.estimated_fps, "verified": part.verified,
        }  # fmt: skip
        if entry["runs_on"] == "arm":
            rel = f"{name}/{name}.qonnx.onnx"
            files[rel] = src.parts[name].qonnx
            entry.update(onnx=rel, onnx_format="qonnx", bitfile=None, hwh=None, driver_settings=None)
        elif merged and manifest["placement"].get("later") == "arm":
            # the merged design holds both pipelines and does not fit: the early-net needs its own build
            entry.update(bitfile=None, hwh=None, driver_settings=None)
            why = "the merged design does not fit; the early-net alone does: rebuild with --part early"
            manifest["missing"].append({"file": f"{name}/{BITFILE}", "why": why})
        else:
            acc = MERGED if merged else name
            if merged:
                entry.update(accelerator=acc, input_index=part.input_index, output_index=part.output_index)
            entry.update(_accelerator_files(out_dir / acc, acc, shell, report, manifest["missing"], files))
        manifest["parts"][name] = entry
    if merged and MERGED in manifest["accelerators"]:
        any_fabric = next((p for p in manifest["parts"].values() if p.get("accelerator") == MERGED), None)
        if any_fabric is None:
            del manifest["accelerators"]
        else:
            manifest["accelerators"][MERGED].update({k: any_fabric[k] for k in ("bitfile", "hwh", "driver_settings")})
    if "early" in manifest["parts"]:
        out = manifest["parts"]["early"]["output"]["shape"]
        if out and len(out) == 4:
            h, w = src.layout
            manifest["collage"] = {
                "layout": list(src.layout), "tile": out[1:3], "shape": [1, h * out[1], w * out[2], out[3]],
                "order": "frame i of the window (oldest first) at tile row i // w, column i % w",
            }  # fmt: skip
    if CLIP in manifest["parts"]:
        shape = manifest["parts"][CLIP]["input"]["shape"]
        manifest["stack"] = {
            "frames": src.frames, "rows": src.img_size, "pitch": shape[1] // src.frames, "shape": shape,
            "order": "frame i of the window (oldest first) at rows i*pitch .. i*pitch + rows - 1; the other rows 0",
        }  # fmt: skip
    return manifest, files


def _accelerator_dirs(manifest: dict) -> list[str]:
    if "accelerators" in manifest:
        return list(manifest["accelerators"])
    return [n for n, p in manifest["parts"].items() if p["runs_on"] == "fabric"]


def readme(manifest: dict) -> str:
    """The steps on the board, for this bundle."""
    parts, stack = manifest["parts"], manifest.get("stack")
    if stack:
        what = (f"Streaming video classification: one accelerator runs the whole window of the last {stack['frames']} "
                f"frames, stacked along H with a pitch of {stack['pitch']} rows ({stack['rows']} frame rows, then "
                "zeros), once per output.")  # fmt: skip
        feed = (f"the last {stack['frames']} raw uint8 RGB frames resized/cropped to {manifest['size']}x"
                f"{manifest['size']} are stacked as `stack` in `manifest.json` says and run on the accelerator every "
                "`--stride` frames, logits = scale * integers.")  # fmt: skip
    else:
        what = (f"Streaming video classification: the early-net runs once per frame, the later-net once per window "
                f"of the last {manifest['frames']} early-net outputs laid out as a {manifest['layout'][0]}x"
                f"{manifest['layout'][1]} collage.")  # fmt: skip
        feed = (f"raw uint8 RGB frames resized/cropped to {manifest['size']}x{manifest['size']} go to the early-net, "
                f"its integer outputs fill a ring of {manifest['frames']}, their collage goes to the later-net, "
                "logits = scale * integers.")  # fmt: skip
    lines = [
        f"# {manifest['model']} ({manifest['bits']}) on {manifest['board']['name']}",
        "",
        f"{what} Classes: {', '.join(manifest['class_names'])}.",
        "",
        "| part | runs on | input | output | est. /s | verified |",
        "|---|---|---|---|---|---|",
    ]
    for name, p in parts.items():
        i, o = p["input"], p["output"]
        lines.append(f"| {name} | {p['runs_on']} | {i['datatype']} {i['shape']} | {o['datatype']} {o['shape']} "
                     f"x {o['scale']:.6g} | {p['estimated_fps']} | {p['verified']} |")  # fmt: skip
    lines += ["", "## Missing files", ""]
    if manifest["missing"]:
        lines += [f"- `{m['file']}`: {m['why']}" for m in manifest["missing"]]
        lines += ["", "Bitfiles need Vivado: rebuild on a machine with Vivado (and Vitis HLS) on PATH with the "
                  "same `vidconv-edge build-fpga` command; the bundle is then complete."]  # fmt: skip
    else:
        lines.append("None: the bundle is complete.")
    lines += [
        "",
        "## On the board",
        "",
        "1. Copy this folder to the board (PYNQ image), e.g. `scp -r deploy xilinx@pynq:~/vidconv/deploy`, and the "
        "vidconv-edge sources beside it.",
        "2. In the board's PYNQ environment (`sudo -i; source /etc/profile.d/pynq_venv.sh`): `pip install "
        "finn-plus-driver rich tqdm` and `pip install --no-deps ~/vidconv/src` (the board side needs no torch; "
        "finn-plus-driver wants numpy<2, which the image has).",
        "3. Check the accelerator(s): "
        + "; ".join(f"`finn-plus-driver -b {d}/finn-accel.bit -s {d}/settings.json -f throughput_test`"
                    for d in _accelerator_dirs(manifest)) + ".",  # fmt: skip
        "4. Stream: `vidconv-edge stream ~/vidconv/deploy --source frames/ --jsonl out.jsonl` (backend `pynq`, "
        "from `manifest.json`; or `examples/board_stream_demo.py --deploy deploy/`): " + feed,
        "",
    ]
    if not stack:
        lines += [
            "## Both parts on the fabric",
            "",
            "Both parts are ONE design (`merged/`): two independent dataflow pipelines in one bitstream, one "
            "finn-plus-driver settings file with two input and two output DMAs (input/output 0 = early-net, "
            "1 = later-net, `input_index`/`output_index` in `manifest.json`)."
            if "accelerators" in manifest else
            "An FPGA holds one bitstream at a time: flashing a second bitfile replaces the first. Both parts "
            "on the fabric need one design holding both (`--part both`, the default); otherwise the early-net "
            "runs on the fabric and the later-net on the ARM cores (`--part early` builds, placement `arm`).",
            "",
        ]  # fmt: skip
    lines += [
        "`manifest.json` holds the shapes, datatypes, folded/packed shapes and scales; its format is documented "
        "in `vidconv_edge/hw/deploy.py`.",
    ]
    return "\n".join(lines) + "\n"


def write_deploy_bundle(report: dict, src, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/deploy`` (manifest, README, driver settings, bitfiles when built) atomically."""
    out = Path(out_dir)
    manifest, files = manifest_for(report, src, out)
    target = out / "deploy"
    tmp = Path(tempfile.mkdtemp(prefix=".deploy.", suffix=".tmp", dir=out))
    try:
        for rel, source in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, tmp / rel)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        (tmp / README).write_text(readme(manifest))
        tmp.chmod(0o755)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=".deploy.", suffix=".old", dir=out))
            os.replace(target, old / "deploy")
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise UserError(f"cannot write the deploy bundle {target}: {e.strerror or e}") from e
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_deploy_manifest(path: str | os.PathLike) -> dict:
    """The manifest of a deploy bundle (folder or file); UserError if it is not one."""
    p = Path(path)
    p = p / MANIFEST if p.is_dir() else p
    try:
        m = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the deploy manifest {p}: {e}") from e
    if m.get("format") != FORMAT:
        raise UserError(f"{p} is not a vidconv-edge deploy manifest")
    return m
