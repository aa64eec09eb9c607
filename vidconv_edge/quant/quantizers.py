"""Brevitas quantizers used by the quantized edge models.

- weights: signed narrow-range int, per-output-channel float scale (max statistics);
- activations: per-tensor float scale initialised from runtime percentile statistics
  (unsigned after ReLU, signed elsewhere);
- pixels: unsigned 8-bit with the constant scale 1, so uint8 pixel values pass exactly;
- tile weights: 2-bit with the constant scale 1, so the all-ones kernel of tile(T) is exact.
"""

from __future__ import annotations

from brevitas.inject.enum import ScalingImplType
from brevitas.quant.scaled_int import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    Uint8ActPerTensorFloat,
)


class PixelQuant(Uint8ActPerTensorFloat):
    """uint8 pixels 0..255 with scale exactly 1: the quantized model's input."""

    scaling_impl_type = ScalingImplType.CONST
    scaling_const = 255.0
    max_val = 255.0


class OnesWeightQuant(Int8WeightPerTensorFloat):
    """Ternary weights with the constant scale 1: the all-ones tiling kernel is represented exactly."""

    scaling_impl_type = ScalingImplType.CONST
    scaling_const = 1.0
    bit_width = 2


def weight_quant(bits: int):
    """Per-channel signed weight quantizer of ``bits`` bits."""
    return Int8WeightPerChannelFloat.let(bit_width=bits)


def act_quant(bits: int, signed: bool):
    """Per-tensor activation quantizer of ``bits`` bits (unsigned after ReLU)."""
    base = Int8ActPerTensorFloat if signed else Uint8ActPerTensorFloat
    return base.let(bit_width=bits)
