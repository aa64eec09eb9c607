"""Quantized ``sevnet_edge`` (Brevitas): the float SEVNet with quantized layers.

uint8 pixels in (normalisation folded into the stem conv; its zero padding now pads black pixels
instead of the mean colour, a border-only difference that calibration/QAT absorbs), per-channel int
weights, per-tensor activations, BN kept as BN. Every residual add quantizes both inputs with one
shared quantizer, and the concat of a downsample module quantizes both halves with one shared
quantizer (equal scales, as FINN's StreamingConcat needs). Bit widths: ``early`` = stem + stages 1-2,
``later`` = stages 3-4 + head. Squeeze-excitation variants are not supported here.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from vidconv_edge.errors import UserError
from vidconv_edge.models.sevnet import SEVModule, SEVNet, SEVNetConfig, TemporalConv
from vidconv_edge.quant.bits import PartBits, QuantBits
from vidconv_edge.quant.layers import (
    OUTPUT_BITS,
    AccBatchNorm2d,
    fold_normalisation,
    load_mapped,
    pixel_input_spec,
    pixel_quant,
    qact,
    qconv,
    qlinear,
    qrelu,
    value,
)


class QConvBNReLU(nn.Sequential):
    """Quantized conv (input already quantized, a ``QuantTensor``) + BN + ReLU; ``quant_out`` False leaves the
    ReLU float, else it returns a ``QuantTensor``."""

    def __init__(self, cin: int, cout: int, kernel, bits: PartBits, quant_out: bool = True, bias: bool = False, **kw):
        super().__init__(
            qconv(cin, cout, kernel, bits.weight, bias=bias, return_quant_tensor=True, **kw),
            AccBatchNorm2d(cout),
            qrelu(bits.act, quant_tensor=True) if quant_out else nn.ReLU(),
        )


class QTemporalConv(TemporalConv):
    """The 3x1x1 conv with a quantized conv and a BN on its accumulator grid; the ReLU stays float (the consumer
    quantizes)."""

    def __init__(self, cin: int, cout: int, frames: int, bits: PartBits):
        self.bits = bits  # read by make_layers, which TemporalConv.__init__ calls
        super().__init__(cin, cout, frames)

    def make_layers(self, cin: int, cout: int) -> tuple[nn.Module, nn.Module, nn.Module]:
        conv = qconv(cin, cout, (3, 1), self.bits.weight, padding=(1, 0), bias=False, return_quant_tensor=True)
        return conv, AccBatchNorm2d(cout), nn.ReLU()


class QSEVModule(SEVModule):
    """``q(x) + q(branch(q(x)))`` with one shared unsigned quantizer ``add_quant``."""

    def __init__(self, channels: int, cfg: SEVNetConfig, bits: PartBits, stride: int = 1):
        self.bits = bits  # read by the layer factories, which SEVModule.__init__ calls
        super().__init__(channels, cfg, stride)
        self.add_quant = qact(bits.act, signed=False, quant_tensor=True)

    def make_conv_bn_relu(self, cin: int, cout: int, kernel, **kwargs) -> nn.Module:
        return QConvBNReLU(cin, cout, kernel, self.bits, **kwargs)

    def make_temporal(self, channels: int, frames: int) -> nn.Module:
        return QTemporalConv(channels, channels, frames, self.bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.add_quant(x)
        return value(x) + value(self.add_quant(self.branch(x)))


class QSEVDownsample(QSEVModule):
    """``cat(q(branch(q(x))), q(shortcut(q(x))))`` with ``cat_quant`` shared by both halves."""

    def __init__(self, channels: int, cfg: SEVNetConfig, bits: PartBits):
        super().__init__(channels, cfg, bits, stride=2)
        # avgpool 3x3/2, quant, 1x1 conv + BN + ReLU: the float Sequential (``0``, ``1``) and the conv's quantizer
        self.shortcut = nn.Sequential(
            OrderedDict(
                [
                    ("0", nn.AvgPool2d(3, stride=2, padding=1)),
                    ("pool_quant", qact(bits.act, signed=False, quant_tensor=True)),
                    ("1", QConvBNReLU(channels, channels, 1, bits, quant_out=False)),
                ]
            )
        )
        self.cat_quant = qact(bits.act, signed=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.add_quant(x)
        return torch.cat([self.cat_quant(self.branch(x)), self.cat_quant(self.shortcut(x))], dim=1)


class QuantSEVNet(SEVNet):
    """Brevitas version of a SEVNet without SE; input: uint8 pixel values as float (B, T, 3, H, W).

    The float network with quantized layers (its layer factories overridden), the pixel input quantizer and
    the head's quantizers; weights come from a float model (:meth:`load_float_state_dict`).
    """

    input_is_uint8 = True
    EARLY_STAGES = 2

    def __init__(self, cfg: SEVNetConfig, bits: QuantBits, name: str = "sevnet_edge"):
        if cfg.se:
            raise UserError(f"model '{name}': squeeze-excitation variants have no quantized version; use --target qdq")
        self.bits = bits  # read by the layer factories, which SEVNet.__init__ calls
        super().__init__(cfg, name)
        self.float_input_spec, self.input_spec = self.input_spec, pixel_input_spec(self.input_spec)
        self.input_quant = pixel_quant()
        self.head_quant = qact(bits.later.act, signed=False, quant_tensor=True)
        self.out_quant = qact(OUTPUT_BITS)

    def part_bits(self, stage: int) -> PartBits:
        return self.bits.early if stage < self.EARLY_STAGES else self.bits.later

    # -- quantized layers ----------------------------------------------------------------------------
    def make_stem(self, width: int) -> nn.Module:
        early = self.bits.early
        return nn.Sequential(
            QConvBNReLU(3, width, 7, early, bias=True, stride=2, padding=3),
            QTemporalConv(width, width, self.cfg.frames, early),
        )

    def make_downsample(self, channels: int, stage: int) -> nn.Module:
        return QSEVDownsample(channels, self.cfg, self.part_bits(stage))

    def make_module(self, channels: int, stage: int) -> nn.Module:
        return QSEVModule(channels, self.cfg, self.part_bits(stage))

    def make_classifier(self, dim: int) -> nn.Module:
        return qlinear(dim, self.cfg.num_classes, self.bits.later.weight)

    # -- quantized input and output ----------------------------------------------------------------------
    def forward_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return super().forward_frames(self.input_quant(frames))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_quant(super().forward_head(self.head_quant(x)))

    def part_of(self, module_name: str) -> str:
        if module_name.startswith(("input_quant", "stem")):
            return "early"
        if module_name.startswith("stages."):
            return "early" if int(module_name.split(".")[1]) < self.EARLY_STAGES else "later"
        return "later"

    def conv_bn_pairs(self) -> list[tuple[nn.Module, nn.Module, str]]:
        """(conv, owner, BN attribute) for every conv + BN pair (merged for export)."""
        pairs = []
        for m in self.modules():
            if isinstance(m, QConvBNReLU):
                pairs.append((m[0], m, "1"))
            elif isinstance(m, QTemporalConv):
                pairs.append((m.conv, m, "bn"))
        return pairs

    def load_float_state_dict(self, float_sd: dict[str, torch.Tensor]) -> None:
        """Load a float SEVNet state dict, folding the input normalisation into the stem conv."""
        sd = dict(float_sd)
        spec = self.float_input_spec
        sd["stem.0.0.weight"], sd["stem.0.0.bias"] = fold_normalisation(
            sd["stem.0.0.weight"], sd.get("stem.0.0.bias"), spec.mean, spec.std
        )
        load_mapped(self, sd)
