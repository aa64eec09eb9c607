"""``pynq``: the accelerators on a PYNQ board, driven by finn-plus-driver from the deploy bundle.

Everything but the DMA transfer is the host logic of :mod:`~vidconv_edge.stream.backends.integer`
(pixels -> uint8 NHWC, packing, ring + collage, dequantisation), tested off-board with a simulated
device. Imported only when asked for: ``finn_plus_driver`` and ``pynq`` exist on the board only.
"""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np

from vidconv_edge.errors import UserError
from vidconv_edge.stream.backends.bundle import FpgaBundle, PartSpec, load_manifest
from vidconv_edge.stream.backends.integer import IntegerBackend, PackedAccelerator


class DmaDevice:
    """A finn-plus-driver overlay (``FINNDMAOverlay``) as a :class:`~vidconv_edge.stream.backends.integer.Device`."""

    def __init__(self, overlay):
        self.overlay = overlay

    def __call__(self, packed: np.ndarray) -> np.ndarray:
        ov = self.overlay
        ov.copy_input_data_to_device(packed.reshape(ov.ishape_packed()))  # same bytes, the driver's buffer shape
        ov.execute_on_buffers()
        ov.copy_output_data_from_device(ov.obuf_packed[0])
        return ov.obuf_packed[0]


def open_overlay(part: PartSpec, download: bool):
    """The driver class named in the part's ``settings.json``, on its bitfile (flashed when ``download``)."""
    from finn_plus_driver import get_driver_class

    if part.bitfile is None or part.driver_settings is None:
        raise UserError(f"the deploy manifest names no bitfile/driver settings for the {part.name}-net")
    for f in (part.bitfile, part.driver_settings):
        if not f.is_file():
            raise UserError(f"deploy bundle incomplete: {f} not found (the bitfile needs a build with Vivado)")
    info = json.loads(part.driver_settings.read_text())["driver_information"]
    info.setdefault("runtime_weight_dir", str(part.driver_settings.parent / "runtime_weights"))
    info.setdefault("mlo_weight_dir", str(part.driver_settings.parent / "mlo_weights"))
    return get_driver_class(info["driver_type"])(str(part.bitfile), download=download, **info)


def open_pynq(path: str | os.PathLike | None, open_device=None) -> IntegerBackend:
    """The board backend for the deploy bundle at ``path``. ``open_device(part) -> Device`` replaces the
    DMA driver (tests run the host side against a simulated device)."""
    if path is None:
        raise UserError("backend pynq needs the deploy/ folder of a build-fpga output (or its manifest.json)")
    bundle: FpgaBundle = load_manifest(path)
    if open_device is None:
        if importlib.util.find_spec("finn_plus_driver") is None or importlib.util.find_spec("pynq") is None:
            raise UserError(
                "backend pynq runs on a PYNQ board: it needs the board image's 'pynq' package and finn-plus-driver "
                "(pip install 'vidconv-edge[board]')"
            )
        flashed: set = set()

        def open_device(part: PartSpec) -> DmaDevice:
            overlay = open_overlay(part, download=part.bitfile not in flashed)
            flashed.add(part.bitfile)
            return DmaDevice(overlay)

    early, later = (PackedAccelerator(bundle.parts[p], open_device(bundle.parts[p])) for p in ("early", "later"))
    return IntegerBackend("pynq", bundle, early, later)
