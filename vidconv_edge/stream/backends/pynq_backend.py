"""``pynq``: the accelerators on a PYNQ board, driven by finn-plus-driver from the deploy bundle.

Parts on the fabric run through their DMA overlays (both in one bitfile: an FPGA holds one bitstream at a
time); a later-net the bundle places on the ARM cores runs as its QONNX model with qonnx. Everything but the
DMA transfer is the host logic of :mod:`~vidconv_edge.stream.backends.integer`
(pixels -> uint8 NHWC, packing, ring + collage, dequantisation), tested off-board with a simulated
device. Imported only when asked for: ``finn_plus_driver`` and ``pynq`` exist on the board only.
"""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np

from vidconv_edge.errors import UserError
from vidconv_edge.hw.deploy import CLIP, part_label
from vidconv_edge.stream.backends.bundle import FpgaBundle, PartSpec, load_manifest
from vidconv_edge.stream.backends.integer import ClipBackend, IntegerBackend, PackedAccelerator


class DmaDevice:
    """One stream pair (input ``i``, output ``o``) of a finn-plus-driver overlay (``FINNDMAOverlay``) as a
    :class:`~vidconv_edge.stream.backends.integer.Device`.

    In the merged design (both parts in one bitstream) the overlay has two input and two output DMAs, and the
    driver's ``execute_on_buffers`` starts all of them: a call for one part also runs the other pipeline on
    whatever its input buffer holds (the two run concurrently, so a call costs the slower one's time), and
    only output ``o`` is read."""

    def __init__(self, overlay, input_index: int = 0, output_index: int = 0):
        self.overlay, self.i, self.o = overlay, input_index, output_index

    def __call__(self, packed: np.ndarray) -> np.ndarray:
        ov, i, o = self.overlay, self.i, self.o
        ov.copy_input_data_to_device(packed.reshape(ov.ishape_packed(i)), i)  # same bytes, the driver's buffer
        ov.execute_on_buffers()
        ov.copy_output_data_from_device(ov.obuf_packed[o], o)
        return ov.obuf_packed[o]


class QonnxOnCpu:
    """A part the bundle places on the ARM cores (``runs_on: arm``): its QONNX model executed by qonnx. Same
    integer interface as an accelerator: NHWC integers in (times the input scale, as NCHW floats for the
    exported model), integer logits out (the model's quantized output divided by its scale)."""

    def __init__(self, part: PartSpec):
        from qonnx.core.modelwrapper import ModelWrapper

        if part.onnx is None or not part.onnx.is_file():
            raise UserError(
                f"deploy bundle incomplete: the {part_label(part.name)}'s QONNX model ({part.onnx}) not found"
            )
        self.part, self.model = part, ModelWrapper(str(part.onnx))
        self.input, self.output = self.model.graph.input[0].name, self.model.graph.output[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from qonnx.core.onnx_exec import execute_onnx

        v = x.astype(np.float32) * np.float32(self.part.input.scale)
        v = np.ascontiguousarray(v.transpose(0, 3, 1, 2)) if v.ndim == 4 else v
        y = execute_onnx(self.model, {self.input: v})[self.output]
        y = y.transpose(0, 2, 3, 1) if y.ndim == 4 else y
        return np.rint(y / np.float32(self.part.output.scale))


def open_overlay(part: PartSpec, download: bool, missing: list[str]):
    """The driver class named in the part's ``settings.json``, on its bitfile (flashed when ``download``)."""
    from finn_plus_driver import get_driver_class

    for what, f in (("bitfile", part.bitfile), ("driver settings", part.driver_settings)):
        if f is None or not f.is_file():
            why = f" (the manifest lists as missing: {'; '.join(missing)})" if missing else ""
            raise UserError(
                f"deploy bundle incomplete: the {part_label(part.name)}'s {what} {f or ''} not found{why}; "
                "bitfiles need a build-fpga run with Vivado"
            )
    info = json.loads(part.driver_settings.read_text())["driver_information"]
    info.setdefault("runtime_weight_dir", str(part.driver_settings.parent / "runtime_weights"))
    info.setdefault("mlo_weight_dir", str(part.driver_settings.parent / "mlo_weights"))
    return get_driver_class(info["driver_type"])(str(part.bitfile), download=download, **info)


def open_pynq(path: str | os.PathLike | None, open_device=None) -> IntegerBackend | ClipBackend:
    """The board backend for the deploy bundle at ``path``. ``open_device(part) -> Device`` replaces the
    DMA driver (tests run the host side against a simulated device)."""
    if path is None:
        raise UserError("backend pynq needs the deploy/ folder of a build-fpga output (or its manifest.json)")
    bundle: FpgaBundle = load_manifest(path)
    on_fabric = [p for p in bundle.parts.values() if p.runs_on != "arm"]
    if open_device is None and on_fabric:
        if importlib.util.find_spec("finn_plus_driver") is None or importlib.util.find_spec("pynq") is None:
            raise UserError(
                "backend pynq runs on a PYNQ board: it needs the board image's 'pynq' package and finn-plus-driver "
                "(pip install 'vidconv-edge[board]')"
            )
        bitfiles = {p.bitfile for p in on_fabric}
        if len(bitfiles) > 1 and None not in bitfiles:
            raise UserError(
                "the deploy bundle has the early- and later-net accelerators in separate bitfiles, and an FPGA holds "
                "one bitstream at a time: merge them into one design (one bitfile for both parts) or place the "
                "later-net on the ARM cores (build with --part early)"
            )
        flashed: set = set()
        overlays: dict = {}  # driver settings -> overlay: the merged design's parts share one

        def open_device(part: PartSpec) -> DmaDevice:
            if part.driver_settings not in overlays:
                download = part.bitfile not in flashed
                overlays[part.driver_settings] = open_overlay(part, download=download, missing=bundle.missing)
                flashed.add(part.bitfile)
            return DmaDevice(overlays[part.driver_settings], part.input_index, part.output_index)

    run = {
        name: QonnxOnCpu(part) if part.runs_on == "arm" else PackedAccelerator(part, open_device(part))
        for name, part in bundle.parts.items()
    }
    if CLIP in run:
        return ClipBackend("pynq", bundle, run[CLIP])
    return IntegerBackend("pynq", bundle, run["early"], run["later"])
