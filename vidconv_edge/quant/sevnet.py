"""Quantized ``sevnet_edge`` (Brevitas), built from the float SEVNet of the same config.

uint8 pixels in (normalisation folded into the stem conv; its zero padding now pads black pixels
instead of the mean colour, a border-only difference that calibration/QAT absorbs), per-channel int
weights, per-tensor activations, BN kept as BN. Every residual add quantizes both inputs with one
shared quantizer, and the concat of a downsample module quantizes both halves with one shared
quantizer (equal scales, as FINN's StreamingConcat needs). Bit widths: ``early`` = stem + stages 1-2,
``later`` = stages 3-4 + head. Squeeze-excitation variants are not supported here.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
import torch.nn as nn

from vidconv_edge.errors import UserError
from vidconv_edge.models.base import VideoClassifier
from vidconv_edge.models.sevnet import SEVNet, SEVNetConfig
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


class QTemporalConv(nn.Module):
    """3x1x1 conv as a (3, 1) conv over (T, H*W), BN, ReLU (float: the consumer quantizes)."""

    def __init__(self, cin: int, cout: int, frames: int, bits: PartBits):
        super().__init__()
        self.frames = frames
        self.conv = qconv(cin, cout, (3, 1), bits.weight, padding=(1, 0), bias=False, return_quant_tensor=True)
        self.bn = AccBatchNorm2d(cout)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        t = self.frames
        y = x.reshape(n // t, t, c, h * w).permute(0, 2, 1, 3)
        y = self.act(self.bn(self.conv(y)))
        return y.permute(0, 2, 1, 3).reshape(n, -1, h, w)


class QSEVModule(nn.Module):
    """``q(x) + q(branch(q(x)))`` with one shared unsigned quantizer ``add_quant``."""

    def __init__(self, channels: int, cfg: SEVNetConfig, bits: PartBits, stride: int = 1):
        super().__init__()
        g = cfg.group_width
        self.pointwise = QConvBNReLU(channels, channels, 1, bits)
        self.spatial = QConvBNReLU(channels, channels, 3, bits, stride=stride, padding=1, groups=channels // g)
        self.temporal = QTemporalConv(channels, channels, cfg.frames, bits)
        self.add_quant = qact(bits.act, signed=False, quant_tensor=True)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.spatial(self.pointwise(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.add_quant(x)
        return value(x) + value(self.add_quant(self.branch(x)))


class QShortcut(nn.Module):
    """avgpool 3x3/2 -> quant -> 1x1 conv + BN + ReLU; children ``0``/``1`` as the float Sequential."""

    def __init__(self, channels: int, bits: PartBits):
        super().__init__()
        self.add_module("0", nn.AvgPool2d(3, stride=2, padding=1))
        self.pool_quant = qact(bits.act, signed=False, quant_tensor=True)
        self.add_module("1", QConvBNReLU(channels, channels, 1, bits, quant_out=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._modules["1"](self.pool_quant(self._modules["0"](x)))


class QSEVDownsample(QSEVModule):
    """``cat(q(branch(q(x))), q(shortcut(q(x))))`` with ``cat_quant`` shared by both halves."""

    def __init__(self, channels: int, cfg: SEVNetConfig, bits: PartBits):
        super().__init__(channels, cfg, bits, stride=2)
        self.shortcut = QShortcut(channels, bits)
        self.cat_quant = qact(bits.act, signed=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.add_quant(x)
        return torch.cat([self.cat_quant(self.branch(x)), self.cat_quant(self.shortcut(x))], dim=1)


class QuantSEVNet(VideoClassifier):
    """Brevitas version of a SEVNet without SE; input: uint8 pixel values as float (B, T, 3, H, W)."""

    input_is_uint8 = True
    EARLY_STAGES = 2

    def __init__(self, cfg: SEVNetConfig, bits: QuantBits, name: str = "sevnet_edge"):
        super().__init__()
        if cfg.se:
            raise UserError(f"model '{name}': squeeze-excitation variants have no quantized version; use --target qdq")
        cfg.validate()
        self.cfg, self.name, self.bits = cfg, name, bits
        self.num_classes = cfg.num_classes
        self.float_input_spec = SEVNet(cfg, name).input_spec
        self.input_spec = pixel_input_spec(self.float_input_spec)
        g = cfg.group_width
        width = cfg.stem_width or 4 * g
        early, later = bits.early, bits.later
        self.input_quant = pixel_quant()
        self.stem = nn.Sequential(
            QConvBNReLU(3, width, 7, early, bias=True, stride=2, padding=3),
            QTemporalConv(width, width, cfg.frames, early),
        )
        stages = []
        for i, depth in enumerate(cfg.depths):
            pb = early if i < self.EARLY_STAGES else later
            mods: list[nn.Module] = [QSEVDownsample(width, cfg, pb)]
            width *= 2
            mods += [QSEVModule(width, cfg, pb) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*mods))
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head_quant = qact(later.act, signed=False, quant_tensor=True)
        self.drop = nn.Dropout(cfg.drop_rate)
        self.fc = qlinear(width, cfg.num_classes, later.weight)
        self.out_quant = qact(OUTPUT_BITS)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        self.check_clip(clip)
        b, t = clip.shape[:2]
        x = self.stem(self.input_quant(clip.reshape(b * t, *clip.shape[2:])))
        for stage in self.stages:
            x = stage(x)
        n, c, h, w = x.shape
        x = self.pool(x.reshape(b, t, c, h * w).permute(0, 2, 1, 3)).flatten(1)
        return self.out_quant(self.fc(self.drop(self.head_quant(x))))

    def part_of(self, module_name: str) -> str:
        if module_name.startswith(("input_quant", "stem")):
            return "early"
        if module_name.startswith("stages."):
            return "early" if int(module_name.split(".")[1]) < self.EARLY_STAGES else "later"
        return "later"

    def config_dict(self) -> dict:
        return asdict(self.cfg)

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
