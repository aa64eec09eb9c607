"""``finn-sim``: the accelerators of a build-fpga folder executed by FINN in Python (qonnx ``execute_onnx``).

The graphs are the HW-layer graphs the build verified bit-exact against the QONNX model
(``<part>/intermediate_models/*_step_verify_hw_python.onnx``); integers in, integers out, so the
streamed logits equal the whole-clip reference bit for bit.

qonnx rounds ("sanitizes") every integer-annotated tensor after each node, with a per-element Python ``max``
that took three quarters of a SEVNet clip's execution time. We run without it and check instead, once per call and
vectorised, that every integer-annotated tensor holds integers of its datatype: exact or an error, never rounded.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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
        with self._threads.limit(limits=1, user_api="blas"), _unsanitized():
            context = execute_onnx(self.model, {self.input: np.asarray(x, dtype=np.float32)}, True)
        check_integers(self.model, context, self.path.name)
        return context[self.output]


@contextmanager
def _unsanitized() -> Iterator[None]:
    """qonnx's per-node rounding off (``SANITIZE_QUANT_TENSORS=0``), the environment restored after."""
    before = os.environ.get("SANITIZE_QUANT_TENSORS")
    os.environ["SANITIZE_QUANT_TENSORS"] = "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ["SANITIZE_QUANT_TENSORS"]
        else:
            os.environ["SANITIZE_QUANT_TENSORS"] = before


def check_integers(model, context: dict[str, np.ndarray], graph: str) -> None:
    """Every tensor of ``context`` that ``model`` annotates with an integer datatype holds exactly such integers."""
    for name, values in context.items():
        dtype = model.get_tensor_datatype(name)
        if dtype is None or not dtype.is_integer():
            continue
        if not np.all(dtype.allowed(values)):
            raise RuntimeError(f"{graph}: tensor {name} holds values that are not {dtype.name} integers")


def open_finn_sim(path: str | os.PathLike | None) -> IntegerBackend | ClipBackend:
    bundle = load_build(path)
    if CLIP in bundle.parts:
        return ClipBackend("finn-sim", bundle, HwGraph(bundle.parts[CLIP].graph))
    return IntegerBackend(
        "finn-sim", bundle, HwGraph(bundle.parts["early"].graph), HwGraph(bundle.parts["later"].graph)
    )
