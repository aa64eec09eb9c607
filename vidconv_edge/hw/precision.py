"""Float precision of a graph: cast every float tensor, and FINN's threshold derivation in float64.

FINN derives each integer threshold from the model's float scales and biases (the activation
quantizer's boundaries, then every bias and scale absorbed one after the other) and rounds it up to an
integer only at the end. In float32 a boundary that lies within float32 rounding of an integer
accumulator value (e.g. 1443.00003, stored as 1443.0) lands on the wrong side of it, and the hardware
differs from the model by one step there (W8A4 ``vic_edge`` with int32 biases, later-net: 70 of
~25,000 thresholds off by one, 7 of 20 logits of a sample off by up to 2 steps). Held in float64 from
the QONNX conversion to the rounding, the thresholds are those of the real-number model, which
``hw.reference`` executes.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE)
_NUMPY = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64}


def cast_float_tensors(model: onnx.ModelProto, to: int) -> onnx.ModelProto:
    """A copy of ``model`` whose float tensors (initializers, inputs, outputs, value infos) have the element
    type ``to`` (``TensorProto.FLOAT`` or ``TensorProto.DOUBLE``)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for i, t in enumerate(g.initializer):
        if t.data_type in _FLOAT_TYPES and t.data_type != to:
            g.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(_NUMPY[to]), t.name))
    for vi in [*g.input, *g.output, *g.value_info]:
        if vi.type.tensor_type.elem_type in _FLOAT_TYPES:
            vi.type.tensor_type.elem_type = to
    return m


class InFloat64(Transformation):
    """Apply ``inner``, then cast the float tensors it created (FINN makes them float32) to float64."""

    def __init__(self, inner: Transformation):
        super().__init__()
        self.inner = inner

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        model = model.transform(self.inner)
        return ModelWrapper(cast_float_tensors(model.model, TensorProto.DOUBLE)), False


@contextmanager
def thresholds_in_float64():
    """FINN's Quant -> MultiThreshold conversion computes thresholds, biases and scales in float64 but
    stores them in its module-level ``np_default_dtype`` (float32): keep them in float64 meanwhile."""
    import finn.transformation.qonnx.qonnx_activation_handlers as handlers

    saved = handlers.np_default_dtype
    handlers.np_default_dtype = np.float64
    try:
        yield
    finally:
        handlers.np_default_dtype = saved
