"""The integer FPGA backends: finn-sim (FINN's python execution of a real build) and the pynq host side
(packing, ring, collage, dequantisation) against a simulated DMA device; the board path without torch."""

from __future__ import annotations

import importlib.machinery
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from vidconv_edge.cli import main as cli_main
from vidconv_edge.errors import UserError
from vidconv_edge.models.base import InputSpec
from vidconv_edge.stream import StreamEngine, open_backend, run_stream
from vidconv_edge.stream.backends.packing import pack, unpack
from vidconv_edge.stream.preprocess import Preprocessor
from vidconv_edge.stream.ring import Collage, FrameRing, collage

from test_stream import _window, decoded, write_video

CLASSES = ["left", "right", "up", "down", "still"]
WHOLE_CLIP = "whole_clip.qonnx.onnx"  # the quantized model's full part: the collage inside the graph


FRAME_RATE = 12.0  # the recipe's record of the training clips' frame rate


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames=12)


@pytest.fixture(scope="session")
def build(tmp_path_factory, worker_id) -> Path:
    """A W8A4 vic_edge at 32x32 built for pynq-z2 as far as it goes without Vivado (verified HW graphs, folding,
    driver settings, deploy bundle without bitfiles; ~1 min), built once per test run: xdist workers share it
    (the first builds, under a file lock)."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if worker_id != "master" else base) / "stream_fpga"
    root.mkdir(exist_ok=True)
    with FileLock(str(root / "lock")):
        if not (root / "build" / "report.json").is_file():
            _build(root)
    return root / "build"


def _build(root: Path) -> None:
    from vidconv_edge.export.qonnx import export_qonnx
    from vidconv_edge.hw.flow import build_fpga
    from vidconv_edge.hw.source import calibrated_for_board
    from vidconv_edge.models import create_model
    from vidconv_edge.quant.bits import make_bits
    from vidconv_edge.quant.model import save_quant_checkpoint

    torch.manual_seed(0)
    qmodel = calibrated_for_board(create_model("vic_edge", img_size=32, num_classes=5).eval(), make_bits(8, act_bits=4))
    save_quant_checkpoint(root / "q.pt", qmodel, CLASSES, recipe={"data": {"frame_rate": FRAME_RATE}})
    report = build_fpga(root / "q.pt", "pynq-z2", root / "build", log=lambda *_: None)
    assert report["verified"] and (root / "build" / "deploy" / "manifest.json").is_file()
    export_qonnx(qmodel, root / WHOLE_CLIP, part="full", class_names=CLASSES)  # the independent reference


# -- packing and the NHWC collage (fast) ---------------------------------------------------------


@pytest.mark.parametrize("datatype,simd", [("INT4", 32), ("INT4", 3), ("UINT8", 3), ("INT8", 10), ("INT5", 6)])
def test_packing_equals_finns_driver_format(datatype, simd):
    from vidconv_edge.hw.finn_env import prepare_finn

    prepare_finn()
    from finn.util.data_packing import finnpy_to_packed_bytearray
    from qonnx.core.datatype import DataType

    dt = DataType[datatype]
    x = np.random.default_rng(0).integers(dt.min(), dt.max() + 1, (1, 4, 4, 2, simd)).astype(np.float32)
    packed = pack(x, datatype)
    np.testing.assert_array_equal(packed, finnpy_to_packed_bytearray(x, dt, reverse_inner=True, reverse_endian=True))
    np.testing.assert_array_equal(unpack(packed, datatype, simd), x)
    with pytest.raises(ValueError, match=f"values outside {datatype}"):
        pack(x + dt.max() + 1, datatype)


def test_channels_last_collage_is_the_nchw_collage_transposed():
    feats = np.random.default_rng(0).standard_normal((18, 5, 3, 4)).astype(np.float32)
    nchw = collage(feats, (3, 3))
    nhwc_feats = np.ascontiguousarray(feats.transpose(0, 2, 3, 1))
    nhwc = collage(nhwc_feats, (3, 3), channels_last=True)
    np.testing.assert_array_equal(nhwc, nchw.transpose(0, 2, 3, 1))
    # the engine's reused buffer: the ring copies its maps into the tiles, oldest first
    for maps, channels_last in ((feats, False), (nhwc_feats, True)):
        ring, buf = FrameRing(9), Collage(maps.shape[1:], maps.dtype, (3, 3), channels_last)
        for m in maps[:13]:
            ring.push(m)
        ring.window_into(buf.tiles)
        np.testing.assert_array_equal(buf.array, collage(maps[4:13], (3, 3), channels_last))


def test_pil_resizer_is_the_eval_crop_within_one_level():
    spec = InputSpec(9, 64, (0.0,) * 3, (1 / 255,) * 3)
    rng = np.random.default_rng(0)
    for h, w in [(48, 160), (200, 90), (72, 104), (64, 64)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        a, b = Preprocessor(spec, "torch").crop(img), Preprocessor(spec, "pil").crop(img)
        assert a.shape == b.shape == (3, 64, 64)
        assert np.abs(a.astype(int) - b).max() <= 1 and (a == b).mean() > 0.5
    np.testing.assert_allclose(Preprocessor(spec, "pil")(img), b, atol=1e-4)  # the pixel spec normalises to x


# -- finn-sim on a real build --------------------------------------------------------------------


def qonnx_reference(build: Path, frames: list[np.ndarray], size: int) -> np.ndarray:
    """The QONNX models the build verified against (qonnx executor), on one window of frames."""
    from vidconv_edge.export.qonnx import run_qonnx
    from vidconv_edge.models.layers import frames_to_collage

    prep = Preprocessor(InputSpec(9, size, (0.0,) * 3, (1 / 255,) * 3))
    feats = run_qonnx(build / "qonnx" / "early.onnx", np.stack([prep(f) for f in frames]))
    return run_qonnx(build / "qonnx" / "later.onnx", frames_to_collage(torch.from_numpy(feats), (3, 3)).numpy())[0]


def whole_clip_steps(path: Path, frames: list[np.ndarray], size: int, scale: float) -> np.ndarray:
    """The whole-clip QONNX model at ``path`` (float64) on one window of decoded frames, in output steps."""
    from vidconv_edge.hw.reference import run_qonnx_float64

    prep = Preprocessor(InputSpec(len(frames), size, (0.0,) * 3, (1 / 255,) * 3))
    return np.rint(run_qonnx_float64(path, np.stack([prep(f) for f in frames])[None])[0] / scale)


@pytest.mark.slow
def test_finn_sim_streams_bit_exact_to_the_whole_clip_and_the_qonnx_model(build, video, tmp_path, capsys):
    rc = cli_main(["stream", str(build), "--source", str(video), "--recompute", "--jsonl", str(tmp_path / "o.jsonl"),
                   "--quiet", "--summary-json", str(tmp_path / "s.json")])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["backend"] == "finn-sim" and summary["outputs"] == 12 - 8
    assert summary["max_abs_diff"] == 0.0  # streamed == whole clip, bit for bit
    lines = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == [8, 9, 10, 11] and len(lines[0]["top"]) == 5
    report = json.loads((build / "report.json").read_text())
    scale = report["parts"]["later"]["io"]["output"]["scale"]
    ints = np.asarray([line["logits"] for line in lines]) / np.float32(scale)
    np.testing.assert_allclose(ints, np.round(ints), atol=1e-3)  # dequantised INT8 logits
    assert np.ptp(ints) >= 8 and np.abs(ints).max() <= 128  # the test sees real spread, no trivial zeros
    frames = decoded(video)
    for line, steps in zip(lines, ints):  # every output, not only the first and the last
        window = frames[line["frame"] - 8 : line["frame"] + 1]
        np.testing.assert_array_equal(np.float32(line["logits"]), qonnx_reference(build, window, 32))
        np.testing.assert_array_equal(np.rint(steps), whole_clip_steps(build.parent / WHOLE_CLIP, window, 32, scale))


@pytest.mark.slow
def test_finn_sim_backend_reads_the_build(build):
    be = open_backend(build)  # inferred from report.json
    from vidconv_edge.export.onnx import read_metadata
    from vidconv_edge.stream.backends.bundle import load_manifest

    assert be.name == "finn-sim" and be.model_name == "vic_edge"
    # the rate of the clips the model learnt (its recipe), for stream's pacing: in the build and the deploy bundle
    assert be.frame_rate == load_manifest(build).frame_rate == FRAME_RATE
    assert json.loads((build / "deploy" / "manifest.json").read_text())["frame_rate"] == FRAME_RATE
    assert be.class_names == read_metadata(build / "qonnx" / "early.onnx")["class_names"]
    assert be.channels_last and be.input_spec.frames == 9 and be.input_spec.layout == (3, 3)
    early, later = be.bundle.parts["early"], be.bundle.parts["later"]
    assert (early.input.shape, early.input.datatype) == ((1, 32, 32, 3), "UINT8")
    assert early.output.datatype == later.input.datatype == "INT4" and early.output.scale == later.input.scale
    assert later.input.shape == (1, 12, 12, early.output.shape[-1]) and later.output.shape == (1, 5)
    x = np.random.default_rng(0).integers(0, 256, (2, 3, 32, 32)).astype(np.float32)
    maps = be.early(x)
    assert maps.shape == (2, 4, 4, early.output.shape[-1]) and maps.dtype == np.int8
    assert -8 <= maps.min() and maps.max() <= 7


def test_finn_sim_and_pynq_say_what_is_missing(tmp_path):
    with pytest.raises(UserError, match=r"backend finn-sim needs a build-fpga output folder \(report.json"):
        open_backend(tmp_path, "finn-sim")
    (tmp_path / "report.json").write_text('{"parts": {}}')
    with pytest.raises(UserError, match="the early-net was not built up to the python verification"):
        open_backend(tmp_path)  # inferred from report.json
    with pytest.raises(UserError, match="no deploy bundle at"):
        open_backend(tmp_path, "pynq")
    (tmp_path / "manifest.json").write_text(json.dumps(toy_manifest()))
    with pytest.raises(
        UserError,
        match=r"needs the board image's 'pynq' package and finn-plus-driver \(pip install 'vidconv-edge\[board\]'\)",
    ):
        open_backend(tmp_path)  # inferred from manifest.json
    (tmp_path / "manifest.json").write_text('{"parts": {"early": {}}}')
    with pytest.raises(UserError, match="is not a complete deploy manifest"):
        open_backend(tmp_path, "pynq")


# -- the pynq host side against a simulated device ------------------------------------------------


class SimOverlay:
    """Stand-in for finn-plus-driver's ``FINNDMAOverlay``, built like the real one from a ``settings.json`` with
    one or more input/output streams: its packed-buffer interface (``ind`` selects the stream), the "hardware"
    being FINN's python execution of each stream's verified HW graph (the part found by its input shape),
    behind FINN's own (not our) packing code. Like the real driver, ``execute_on_buffers`` runs every stream."""

    created: list = []
    build: Path

    def __init__(self, bitfile, platform, io_shape_dict, download=True, **info):
        from qonnx.core.datatype import DataType

        from vidconv_edge.stream.backends.finn_sim import HwGraph

        self.bitfile, self.download, self.platform = bitfile, download, platform
        self.io = io = dict(io_shape_dict)
        for k in ("idt", "odt"):
            io[k] = [DataType[t.split("'")[1]] for t in io[k]]  # "DataType['INT4']"
        self.parts = [next(p for p in ("early", "later") if self.build_io(p) == shape) for shape in io["ishape_normal"]]
        self.part = self.parts[0] if len(self.parts) == 1 else tuple(self.parts)
        self.graphs = [HwGraph(next((self.build / p / "intermediate_models").glob("*_verify_hw_python.onnx")))
                       for p in self.parts]  # fmt: skip
        self._ibuf = [np.zeros(shape, np.uint8) for shape in io["ishape_packed"]]
        self.obuf_packed = [np.zeros(shape, np.uint8) for shape in io["oshape_packed"]]
        SimOverlay.created.append(self)

    @classmethod
    def build_io(cls, part: str) -> list:
        manifest = json.loads((cls.build / "deploy" / "manifest.json").read_text())
        return manifest["parts"][part]["input"]["shape"]

    def ishape_packed(self, ind=0):
        return tuple(self.io["ishape_packed"][ind])

    def copy_input_data_to_device(self, data, ind=0):
        assert data.dtype == np.uint8 and data.shape == self.ishape_packed(ind)
        self._ibuf[ind] = data.copy()

    def execute_on_buffers(self):
        from finn.util.data_packing import finnpy_to_packed_bytearray, packed_bytearray_to_finnpy

        io = self.io
        self._obuf = []
        for k, graph in enumerate(self.graphs):
            x = packed_bytearray_to_finnpy(self._ibuf[k], io["idt"][k], tuple(io["ishape_folded"][k]),
                                           reverse_inner=True, reverse_endian=True)  # fmt: skip
            y = graph(x.reshape(io["ishape_normal"][k])).reshape(io["oshape_folded"][k])
            self._obuf.append(finnpy_to_packed_bytearray(y, io["odt"][k], reverse_inner=True, reverse_endian=True))

    def copy_output_data_from_device(self, data, ind=0):
        np.copyto(data, self._obuf[ind])


def fake_module(monkeypatch, name: str, **attrs) -> None:
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    for k, v in attrs.items():
        setattr(mod, k, v)
    monkeypatch.setitem(sys.modules, name, mod)


def fake_board(monkeypatch, build: Path) -> None:
    """``pynq`` and ``finn_plus_driver`` as on the board, the overlays simulated."""
    SimOverlay.created, SimOverlay.build = [], build
    fake_module(monkeypatch, "pynq")
    fake_module(monkeypatch, "finn_plus_driver", get_driver_class=lambda name: {"FINNDMAOverlay": SimOverlay}[name])


def vivado_built(build: Path, deploy: Path, later_on_arm: bool = False) -> Path:
    """``build``'s deploy bundle as a Vivado build completes it: one (stand-in) bitfile holding both accelerators,
    nothing missing; or with the later-net placed on the ARM cores (its QONNX model in the bundle)."""
    import shutil

    shutil.copytree(build / "deploy", deploy)
    manifest = json.loads((deploy / "manifest.json").read_text())
    for name, part in manifest["parts"].items():
        if name == "later" and later_on_arm:
            (deploy / "later").mkdir(exist_ok=True)
            shutil.copy(build / "qonnx" / "later.onnx", deploy / "later" / "later.qonnx.onnx")
            part.update(runs_on="arm", onnx="later/later.qonnx.onnx", bitfile=None, driver_settings=None)
        elif later_on_arm:  # as a --part early build leaves it: the early-net's own one-stream accelerator
            settings = json.loads((deploy / part["driver_settings"]).read_text())
            io = settings["driver_information"]["io_shape_dict"]
            io.update({k: v[:1] for k, v in io.items() if isinstance(v, list)}, num_inputs=1, num_outputs=1)
            (deploy / "early").mkdir(exist_ok=True)
            (deploy / "early" / "settings.json").write_text(json.dumps(settings))
            (deploy / "finn-accel.bit").write_bytes(b"")
            part.update(bitfile="finn-accel.bit", driver_settings="early/settings.json", input_index=0, output_index=0)
        else:
            (deploy / "finn-accel.bit").write_bytes(b"")
            part["bitfile"] = "finn-accel.bit"
    manifest["missing"] = []
    (deploy / "manifest.json").write_text(json.dumps(manifest))
    return deploy


@pytest.mark.slow
def test_pynq_host_side_equals_finn_sim_through_the_packed_dma_buffers(build, video, tmp_path, monkeypatch):
    sim = open_backend(build, "finn-sim")
    expected: list = []
    run_stream(video, sim, stride=2, progress=False, on_prediction=expected.append)
    fake_board(monkeypatch, build)
    for later_on_arm in (False, True):
        deploy = vivado_built(build, tmp_path / f"deploy{int(later_on_arm)}", later_on_arm)
        SimOverlay.created = []
        board = open_backend(deploy)  # inferred from manifest.json
        assert board.name == "pynq" and board.class_names == sim.class_names
        flashed = [(o.part, o.download, Path(o.bitfile).name, o.platform) for o in SimOverlay.created]
        # the merged design: one overlay with both streams, flashed once; early only when the later-net is on ARM
        assert flashed == [("early" if later_on_arm else ("early", "later"), True, "finn-accel.bit", "zynq-iodma")]
        got: list = []
        summary = run_stream(video, board, stride=2, recompute=True, progress=False, on_prediction=got.append)
        assert [p.frame for p in got] == [8, 10] and summary["max_abs_diff"] == 0.0
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a.logits, b.logits)


# -- every streamed output against the whole-clip QONNX model (fast: a small committed build) ----------

TINY = Path(__file__).parent / "data" / "tiny_fpga"  # written by scripts/make_tiny_fpga_fixture.py


def tiny_frames(count: int) -> np.ndarray:
    """``count`` frames of the bundled sample video at the tiny build's 32x32, raw pixels (as the engine gets them),
    starting after the frames its calibration saw."""
    from vidconv_edge.hw.source import video_frames

    return video_frames(None, 32, 20 + count)[20:].astype(np.float32)


def stream_against_whole_clip(be, stride: int, pad: str, frames: np.ndarray) -> np.ndarray:
    """Stream ``frames`` through ``be``; assert every output equals the whole-clip QONNX model (float64, the
    collage inside the graph: neither the backend's early/later path nor its ring) on that output's window, in
    integer output steps. Returns the integer logits, one row per output."""
    from vidconv_edge.hw.reference import run_qonnx_float64

    engine, length = StreamEngine(be, stride=stride, pad=pad), be.input_spec.frames
    scale = be.bundle.parts["later"].output.scale
    got, wrong_order = [], 0
    for i, frame in enumerate(frames):
        pred = engine.push(frame, i, 0.0)
        if pred is None:
            continue
        clip = _window(frames, i, length, pad)
        ref = run_qonnx_float64(TINY / WHOLE_CLIP, np.stack([clip, clip[::-1]]))
        steps = ref / scale
        np.testing.assert_allclose(steps, np.rint(steps), atol=1e-6)  # the reference's own quantized logits
        ints = np.rint(pred.logits / np.float32(scale))
        np.testing.assert_array_equal(ints, np.rint(steps[0]), err_msg=f"output at frame {i}")
        wrong_order += not np.array_equal(ints, np.rint(steps[1]))
        got.append(ints)
    assert len(got) == len(range((length - 1) * (pad == "none"), len(frames), stride))
    assert wrong_order > 0  # the reference sees the frame order: a ring replaying frames wrongly would fail
    return np.asarray(got)


@pytest.mark.parametrize("stride,pad", [(1, "none"), (2, "first")])
def test_finn_sim_every_output_equals_the_whole_clip_qonnx_model(stride, pad):
    be = open_backend(TINY, "finn-sim")
    assert be.name == "finn-sim" and be.input_spec.frames == 9
    ints = stream_against_whole_clip(be, stride, pad, tiny_frames(15))
    assert np.ptp(ints) >= 8 and len(np.unique(ints, axis=0)) > 1  # real spread, outputs that change


@pytest.mark.parametrize("later_on_arm", [False, True])
def test_pynq_host_path_every_output_equals_the_whole_clip_qonnx_model(later_on_arm, tmp_path, monkeypatch):
    """The board backend's host side (uint8 frames, packing into folded DMA words, ring, NHWC collage, unpacking,
    dequantisation) with FINN's execution of the verified HW graphs as the stand-in accelerator."""
    fake_board(monkeypatch, TINY)
    board = open_backend(vivado_built(TINY, tmp_path / "deploy", later_on_arm))
    assert board.name == "pynq" and len(SimOverlay.created) == 1
    simd = [part.input.folded_shape[-1] for part in board.bundle.parts.values()]
    assert max(simd) > 1  # several values per DMA word: the packing is exercised
    ints = stream_against_whole_clip(board, 1, "none", tiny_frames(12))
    assert np.ptp(ints) >= 8


@pytest.mark.slow
def test_pynq_names_a_missing_or_split_bitstream(build, tmp_path, monkeypatch):
    fake_board(monkeypatch, build)
    with pytest.raises(UserError, match=r"deploy bundle incomplete: the early-net's bitfile .*step_hw_ipgen needs"):
        open_backend(build / "deploy")  # as build-fpga leaves it without Vivado
    deploy = vivado_built(build, tmp_path / "deploy")
    manifest = json.loads((deploy / "manifest.json").read_text())
    manifest["parts"]["later"]["bitfile"] = "later/finn-accel.bit"
    (deploy / "later").mkdir(exist_ok=True)
    (deploy / "later" / "finn-accel.bit").write_bytes(b"")
    (deploy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="separate bitfiles, and an FPGA holds one bitstream at a time"):
        open_backend(deploy)


# -- the board path needs neither torch nor FINN --------------------------------------------------


def toy_manifest() -> dict:
    """A deploy manifest of a 16x16 model with 2x2 early maps and a 3x3 collage (no build needed)."""
    return {
        "model": "toy", "class_names": ["a", "b", "c"], "frames": 9, "size": 16, "layout": [3, 3],
        "parts": {
            "early": {"input": {"shape": [1, 16, 16, 3], "datatype": "UINT8", "scale": 1.0},
                      "output": {"shape": [1, 2, 2, 4], "datatype": "INT4", "scale": 0.5}},
            "later": {"input": {"shape": [1, 6, 6, 4], "datatype": "INT4", "scale": 0.5},
                      "output": {"shape": [1, 3], "datatype": "INT8", "scale": 0.25}},
        },
    }  # fmt: skip


BOARD_SCRIPT = """
import sys
sys.modules["torch"] = None  # as on a PYNQ board: `import torch` fails
import numpy as np
from PIL import Image
from vidconv_edge.stream import run_stream
from vidconv_edge.stream.backends.packing import pack, unpack
from vidconv_edge.stream.backends.pynq_backend import open_pynq

def device(part):
    def run(packed):  # early: 4 block means of the red channel, later: sums of the collage's 4 channels
        x = unpack(packed, part.input.datatype, part.input.folded_shape[-1]).reshape(part.input.shape)
        if part.name == "early":
            y = x[0, :, :, 0].reshape(2, 8, 2, 8).mean((1, 3)) // 32 - 4
            y = np.repeat(y[None, :, :, None], 4, axis=3)
        else:
            y = np.clip(x.reshape(-1, 4).sum(0)[:3] // 4, -128, 127)[None]
        return pack(y.reshape(part.output.folded_shape), part.output.datatype)
    return run

frames = sys.argv[1]
for i in range(11):
    Image.fromarray(np.full((20, 24, 3), 20 * i, np.uint8)).save(f"{frames}/img_{i:05d}.png")
be = open_pynq(sys.argv[2], open_device=device)
summary = run_stream(frames, be, jsonl=sys.argv[3], progress=False)
print(summary["outputs"], summary["backend"], "torch" in sys.modules and sys.modules["torch"] is not None)
"""


def test_board_host_path_runs_without_torch(tmp_path):
    (tmp_path / "frames").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps(toy_manifest()))
    out = subprocess.run(
        [sys.executable, "-c", BOARD_SCRIPT, str(tmp_path / "frames"), str(tmp_path), str(tmp_path / "o.jsonl")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "pynq", "False"]
    lines = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    # frame i is grey 20*i: early maps 20i // 32 - 4, later sums 36 map values (x0.5 scale folded in the ints)
    for line in lines:
        maps = [20 * i // 32 - 4 for i in range(line["frame"] - 8, line["frame"] + 1)]
        expect = 4 * sum(maps) // 4 * 0.25
        assert line["logits"] == [expect] * 3 and line["top"][0][0] == "a"


@pytest.mark.slow
def test_board_demo_rehearses_on_the_pc_with_finn_sim(build, video, tmp_path, capsys):
    import importlib.util

    path = Path(__file__).parents[1] / "examples" / "board_stream_demo.py"
    spec = importlib.util.spec_from_file_location("board_stream_demo", path)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    assert demo.main(["--sim", str(build), "--source", str(video), "--out", str(tmp_path)]) == 0
    assert len((tmp_path / "predictions.jsonl").read_text().splitlines()) == 12 - 8
    assert len(decoded(tmp_path / "overlay.mp4")) == 12
    assert "finn-sim" in capsys.readouterr().out
    assert demo.main(["--deploy", str(tmp_path / "nowhere"), "--source", str(video)]) == 2
    assert "no deploy bundle at" in capsys.readouterr().err


# ----------------------------------------------------------------------------- stream formats and backends


def test_stream_datatypes_accepted_and_refused():
    from vidconv_edge.stream.backends.packing import container_dtype, parse_datatype

    assert parse_datatype("INT4") == (4, True) and parse_datatype("uint8") == (8, False)
    assert parse_datatype("UINT1") == (1, False) and parse_datatype("INT32") == (32, True)
    assert [container_dtype(n) for n in ("UINT8", "INT9", "UINT16", "INT17")] == [
        np.dtype("uint8"), np.dtype("int16"), np.dtype("uint16"), np.dtype("int32")]  # fmt: skip
    for bad in ("INT0", "UINT33", "BIPOLAR", "FLOAT32", "INT"):
        with pytest.raises(ValueError, match=f"unsupported stream datatype '{bad}'"):
            parse_datatype(bad)


def test_stream_io_reads_a_missing_scale_as_one_and_refuses_a_zero_point():
    from vidconv_edge.stream.backends.bundle import StreamIO

    io = StreamIO.from_json({"shape": [1, 4, 4, 8], "datatype": "UINT4"}, "report.json", "input")
    assert io.scale == 1.0 and io.folded_shape == (1, 4, 4, 1, 8)
    assert StreamIO.from_json({"shape": [1, 8], "datatype": "INT8", "scale": 0.5}, "r", "o").scale == 0.5
    with pytest.raises(ValueError, match="zero_point 3"):
        StreamIO.from_json({"shape": [1, 8], "datatype": "INT8", "zero_point": 3}, "r", "o")
    with pytest.raises(UserError, match="report.json: field 'input.datatype' is missing"):
        StreamIO.from_json({"shape": [1, 8]}, "report.json", "input")


def test_backend_inferred_from_what_the_path_holds(tmp_path):
    from vidconv_edge.stream.backends import infer_backend

    assert infer_backend(None) == "torch" and infer_backend(tmp_path / "m.onnx") == "onnxruntime"
    folder = tmp_path / "build"
    folder.mkdir()
    assert infer_backend(folder) == "torch"  # nothing in it says what it is
    (folder / "report.json").write_text("{}")
    assert infer_backend(folder) == "finn-sim"
    assert infer_backend(tmp_path / "report.json") == "torch"  # a file, not a build folder
    (folder / "manifest.json").write_text("{}")
    assert infer_backend(folder) == "pynq" and infer_backend(folder / "manifest.json") == "pynq"
    (folder / "early.onnx").write_text("")
    assert infer_backend(folder) == "onnxruntime"


def test_to_stream_rounds_scales_and_saturates_at_the_datatype_range():
    from vidconv_edge.stream.backends.bundle import StreamIO
    from vidconv_edge.stream.backends.integer import to_stream

    values = np.array([-300.0, -8.5, -7.6, 0.5, 1.5, 6.6, 7.5, 300.0])
    signed = to_stream(values, StreamIO((8,), "INT4", 1.0, (1, 8)))
    assert signed.tolist() == [-8, -8, -8, 0, 2, 7, 7, 7] and signed.dtype == np.int8
    unsigned = to_stream(values, StreamIO((8,), "UINT4", 1.0, (1, 8)))
    assert unsigned.tolist() == [0, 0, 0, 0, 2, 7, 8, 15] and unsigned.dtype == np.uint8
    assert to_stream(np.array([3.0, 255.0]), StreamIO((2,), "UINT8", 2.0, (1, 2))).tolist() == [2, 128]
    assert to_stream(np.array([1e6]), StreamIO((1,), "INT9", 1.0, (1, 1))).tolist() == [255]


def test_stack_frames_pads_each_frame_to_its_pitch():
    from vidconv_edge.stream.backends.integer import stack_frames

    frames = np.arange(2 * 2 * 3 * 1).reshape(2, 2, 3, 1) + 1
    out = stack_frames(frames, pitch=3)
    assert out.shape == (1, 6, 3, 1) and out.dtype == frames.dtype
    assert out[0, :, :, 0].tolist() == [[1, 2, 3], [4, 5, 6], [0, 0, 0], [7, 8, 9], [10, 11, 12], [0, 0, 0]]


def test_the_accelerator_is_fed_the_raw_pixels_of_every_channel():
    """The bundle's input spec (kept free of torch for the board) is the quantized model's pixel spec, and the
    preprocessing then hands the accelerator each channel's pixel values unchanged."""
    from vidconv_edge.quant.layers import PIXEL_MEAN, PIXEL_STD

    spec = open_backend(TINY, "finn-sim").input_spec
    assert (spec.mean, spec.std) == (PIXEL_MEAN, PIXEL_STD)
    image = np.zeros((spec.size, spec.size, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 7, 130, 255
    out = Preprocessor(spec, resize="pil")(image)
    assert [np.unique(c).tolist() for c in out] == [[7.0], [130.0], [255.0]]
