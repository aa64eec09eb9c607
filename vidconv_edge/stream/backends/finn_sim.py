"""``finn-sim``: the accelerators of a build-fpga folder executed by FINN in Python (qonnx ``execute_onnx``).

The graphs are the HW-layer graphs the build verified bit-exact against the QONNX model
(``<part>/intermediate_models/*_step_verify_hw_python.onnx``); integers in, integers out, so the
streamed logits equal the whole-clip reference bit for bit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vidconv_edge.hw.deploy import CLIP
from vidconv_edge.stream.backends.bundle import load_build
from vidconv_edge.stream.backends.integer import ClipBackend, IntegerBackend


class HwGraph:
    """One HW-layer graph as an :class:`~vidconv_edge.stream.backends.integer.Accelerator`."""

    def __init__(self, path: str | os.PathLike):
        from qonnx.core.modelwrapper import ModelWrapper
        from threadpoolctl import ThreadpoolController

        self._threads = ThreadpoolController()
        self.path = Path(path)
        self.model = ModelWrapper(str(path))
        self.input = self.model.graph.input[0].name
        self.output = self.model.graph.output[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from qonnx.core.onnx_exec import execute_onnx

        # one BLAS thread: multi-threaded OpenBLAS on these small matrices was 3-15x slower on a busy 2-core CPU
        with self._threads.limit(limits=1, user_api="blas"):
            return execute_onnx(self.model, {self.input: np.asarray(x, dtype=np.float32)})[self.output]


def open_finn_sim(path: str | os.PathLike | None) -> IntegerBackend | ClipBackend:
    bundle = load_build(path)
    if CLIP in bundle.parts:
        return ClipBackend("finn-sim", bundle, HwGraph(bundle.parts[CLIP].graph))
    return IntegerBackend(
        "finn-sim", bundle, HwGraph(bundle.parts["early"].graph), HwGraph(bundle.parts["later"].graph)
    )
