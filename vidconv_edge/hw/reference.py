"""The reference the HW graph is verified against: the QONNX model executed in float64.

qonnx's executor runs the float ops in float32 (ONNX Runtime). A float32 convolution sums products
with ~1e-7 relative error, so an activation a few ulps above a rounding boundary (``x/scale = k + 1/2
+ 2e-5``) can come out as an exact tie and round to the even neighbour, one step away from the HW graph,
which compares integer accumulators with the boundary exactly. At 8-bit activations on a 96x96 input
that is about one value per frame (W8A8 ``vic_edge`` on the sample video: 9 of 55,296 early-net outputs
in 12 frames; with float64 execution: 0). Executed in float64 (onnx's reference evaluator, qonnx's
``quant`` for the Quant nodes) the model's value is within ~1e-16 of the real-number one, and the HW
graph reproduces it bit for bit; the float32 count is kept in the report as ``float32_reference_differs``.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from vidconv_edge.errors import UserError
from vidconv_edge.hw.precision import cast_float_tensors

QONNX_DOMAIN = "qonnx.custom_op.general"


class Quant(OpRun):
    """qonnx's ``Quant`` (integer quantization with scale, zero point, bit width) for the reference evaluator."""

    op_domain = QONNX_DOMAIN

    def _run(self, x, scale, zeropt, bitwidth, narrow=None, rounding_mode=None, signed=None):
        from qonnx.custom_op.general.quant import quant

        out = quant(x, scale, zeropt, bitwidth, signed=signed, narrow=narrow, rounding_mode=rounding_mode)
        return (np.asarray(out, dtype=x.dtype),)


def run_qonnx_float64(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """First output of the QONNX file at ``path`` on the batch ``x``, one sample at a time, computed in float64."""
    model = cast_float_tensors(onnx.load(str(path)), TensorProto.DOUBLE)
    try:
        evaluator = ReferenceEvaluator(model, new_ops=[Quant])
    except Exception as e:  # an op the reference evaluator does not know
        raise UserError(f"cannot execute {path} in float64 for verification: {e}") from e
    name = evaluator.input_names[0]
    x = np.asarray(x, dtype=np.float64)
    return np.concatenate([evaluator.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])
