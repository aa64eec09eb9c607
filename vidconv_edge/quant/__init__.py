"""8-bit (and W/A-mixed) Brevitas versions of the edge models, calibration, QAT and error reports.

Importing this package pulls in Brevitas; the rest of vidconv_edge does not need it.
"""

from vidconv_edge.quant.bits import QuantBits, make_bits
from vidconv_edge.quant.model import (
    any_model_from_checkpoint,
    is_quant_checkpoint,
    is_quant_model,
    quant_model_from_checkpoint,
    quantize_model,
    save_quant_checkpoint,
)

__all__ = [
    "QuantBits",
    "any_model_from_checkpoint",
    "is_quant_checkpoint",
    "is_quant_model",
    "make_bits",
    "quant_model_from_checkpoint",
    "quantize_model",
    "save_quant_checkpoint",
]
