"""Quantized ``vic_edge`` (Brevitas): the float VidConv edge network with integer-friendly structure.

Structure (per DESIGN "FINN facts"): uint8 pixels in (scale 1, normalisation folded into the stem
conv), per-channel int weights, per-tensor activations, BN kept as BN (FINN absorbs it into the next
thresholds), one shared quantizer for both inputs of every residual add and for S and tile(T), alpha
folded into T's weights, tile(T) as the padded all-ones depthwise conv dilated by the tile size,
the early-net output quantized (the frame-buffer / partition boundary), 8-bit logits.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
from brevitas.nn import QuantConv2d

from vidconv_edge.errors import UserError
from vidconv_edge.models.vidconv import Mlp, VidConv, VidConvBlock, VidConvConfig
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
from vidconv_edge.quant.quantizers import OnesWeightQuant


class QTile(nn.Module):
    """tile(T): all-ones depthwise (h, w) conv dilated by the tile size, zero padding (h-1)*tile."""

    def __init__(self, channels: int, layout: tuple[int, int], tile: tuple[int, int]):
        super().__init__()
        (h, w), (th, tw) = layout, tile
        self.conv = QuantConv2d(
            channels, channels, (h, w), dilation=(th, tw), padding=((h - 1) * th, (w - 1) * tw),
            groups=channels, bias=False, weight_quant=OnesWeightQuant,
        )  # fmt: skip
        self.conv.weight.data.fill_(1.0)
        self.conv.weight.requires_grad_(False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.conv(t)


class QTemporal(nn.Module):
    """``tile(q(T(x)))`` with alpha folded into T's depthwise weights; ``q`` is the block's S/T quantizer."""

    def __init__(self, dim: int, layout: tuple[int, int], tile: tuple[int, int], bits: PartBits):
        super().__init__()
        self.conv = qconv(dim, dim, layout, bits.weight, dilation=tile, groups=dim)
        self.tile = QTile(dim, layout, tile)

    def forward(self, x: torch.Tensor, quant: nn.Module) -> torch.Tensor:
        return self.tile(quant(self.conv(x)))


class QMlp(Mlp):
    """``fc2(q(fc1(q(x))))``: the float MLP with quantized pointwise convs and ReLU, and an input quantizer."""

    def __init__(self, dim: int, hidden: int, bits: PartBits):
        self.bits = bits  # read by the layer factories, which Mlp.__init__ calls
        super().__init__(dim, hidden, "relu")
        self.in_quant = qact(bits.act, quant_tensor=True)

    def make_fc(self, cin: int, cout: int) -> nn.Module:
        return qconv(cin, cout, 1, self.bits.weight)

    def make_act(self, kind: str) -> nn.Module:
        return qrelu(self.bits.act, quant_tensor=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.in_quant(x))


class QBlock(VidConvBlock):
    """``x + mlp(bn(q(S) + tile(q(T))))`` with ``add_quant`` shared by x and the branch output (no layer scale,
    no drop path)."""

    def __init__(self, dim: int, cfg: VidConvConfig, tile: tuple[int, int] | None, bits: PartBits):
        self.bits = bits  # read by the layer factories, which VidConvBlock.__init__ calls
        temporal = QTemporal(dim, tuple(cfg.layout), tile, bits) if tile is not None else None
        super().__init__(dim, cfg, 0.0, temporal)
        self.add_quant = qact(bits.act, quant_tensor=True)
        self.mix_quant = qact(bits.act) if tile is not None else None

    def make_conv(self, cin: int, cout: int, kernel: int, **kwargs) -> nn.Module:
        """Returns a ``QuantTensor``: the BN after it rounds its shift to the conv's accumulator grid."""
        return qconv(cin, cout, kernel, self.bits.weight, return_quant_tensor=True, **kwargs)

    def make_norm(self, kind: str, dim: int) -> nn.Module:
        return AccBatchNorm2d(dim)

    def make_mlp(self, dim: int, hidden: int, act: str) -> nn.Module:
        return QMlp(dim, hidden, self.bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.add_quant(x)
        y = self.conv_dw(x)
        if self.temporal is not None:
            y = self.mix_quant(y) + self.temporal(x, self.mix_quant)
        y = self.mlp(self.norm(y))
        return value(x) + value(self.add_quant(y))


class QHead(nn.Module):
    """GlobalAveragePool -> BN -> quant -> FC -> 8-bit logits."""

    def __init__(self, dim: int, num_classes: int, bits: PartBits, drop_rate: float):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.norm = nn.BatchNorm2d(dim)
        self.in_quant = qact(bits.act, quant_tensor=True)
        self.drop = nn.Dropout(drop_rate)
        self.fc = qlinear(dim, num_classes, bits.weight)
        self.out_quant = qact(OUTPUT_BITS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.in_quant(self.norm(self.pool(x)))
        return self.out_quant(self.fc(self.drop(x.flatten(1))))


class QuantVidConv(VidConv):
    """Brevitas version of a BN/ReLU VidConv (``vic_edge``); input: uint8 pixel values as float (B, T, 3, H, W).

    The float network with quantized layers (its layer factories overridden), the pixel input quantizer and
    the early-net output quantizer; weights come from a float model (:meth:`load_float_state_dict`).
    """

    input_is_uint8 = True

    def __init__(self, cfg: VidConvConfig, bits: QuantBits, name: str = "vic_edge"):
        if cfg.norm != "bn" or cfg.act != "relu" or cfg.neck_dim or cfg.ls_init is not None:
            raise UserError(
                f"model '{name}' cannot be quantized for FINN: it needs BN + ReLU, no neck and no layer scale "
                f"(got norm={cfg.norm}, act={cfg.act}, neck_dim={cfg.neck_dim}, ls_init={cfg.ls_init}); "
                "use the QDQ path (--target qdq) for full models"
            )
        self.bits = bits  # read by the layer factories, which VidConv.__init__ calls
        super().__init__(cfg, name)
        self.float_input_spec, self.input_spec = self.input_spec, pixel_input_spec(self.input_spec)
        self.input_quant = pixel_quant()
        self.early_quant = qact(bits.early.act)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        """None: the weights come from a float model (and the tile kernel stays all ones)."""

    def part_bits(self, stage: int) -> PartBits:
        return self.bits.early if stage < self.cfg.stack_stage else self.bits.later

    # -- quantized layers ----------------------------------------------------------------------------
    def make_stem(self) -> nn.Module:
        dim = self.cfg.dims[0]
        return nn.Sequential(
            qconv(3, dim, 4, self.bits.early.weight, stride=4, return_quant_tensor=True), AccBatchNorm2d(dim)
        )

    def make_downsample(self, stage: int) -> nn.Module:
        """BN -> quant -> 2x2 stride-2 conv: the float ``Sequential`` (``0``, ``1``) with the conv's input quantizer."""
        cin, cout, pb = self.cfg.dims[stage - 1], self.cfg.dims[stage], self.part_bits(stage)
        return nn.Sequential(
            OrderedDict(
                [
                    ("0", nn.BatchNorm2d(cin)),
                    ("in_quant", qact(pb.act, quant_tensor=True)),
                    ("1", qconv(cin, cout, 2, pb.weight, stride=2)),
                ]
            )
        )

    def make_block(self, stage: int, drop_path: float) -> nn.Module:
        tile = self.tile(stage) if self.has_temporal(stage) else None
        return QBlock(self.cfg.dims[stage], self.cfg, tile, self.part_bits(stage))

    def make_head(self) -> nn.Module:
        return QHead(self.cfg.dims[-1], self.cfg.num_classes, self.bits.later, self.cfg.drop_rate)

    # -- quantized input and early-net output ----------------------------------------------------------
    def forward_early(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8-valued frames -> (N, C, h', w') quantized features."""
        return self.early_quant(super().forward_early(self.input_quant(frames)))

    def part_of(self, module_name: str) -> str:
        """``early`` or ``later``: where a submodule (by qualified name) runs."""
        if module_name.startswith(("input_quant", "stem", "early_quant")):
            return "early"
        if module_name.startswith("stages."):
            return "early" if int(module_name.split(".")[1]) < self.cfg.stack_stage else "later"
        return "later"

    def conv_bn_pairs(self) -> list[tuple[nn.Module, nn.Module, str]]:
        """(conv, owner, BN attribute) for every BN that directly follows a conv (merged for export)."""
        pairs = [(self.stem[0], self.stem, "1")]
        for stage in self.stages:
            pairs += [(b.conv_dw, b, "norm") for b in stage.blocks if b.temporal is None]
        return pairs

    # -- float weights ------------------------------------------------------------------------------
    def load_float_state_dict(self, float_sd: dict[str, torch.Tensor]) -> None:
        """Load a float ``vic_edge`` state dict: normalisation folded into the stem, alpha into T."""
        sd = dict(float_sd)
        spec = self.float_input_spec
        sd["stem.0.weight"], sd["stem.0.bias"] = fold_normalisation(
            sd["stem.0.weight"], sd.get("stem.0.bias"), spec.mean, spec.std
        )
        for key in [k for k in sd if k.endswith(".temporal.alpha")]:
            alpha = sd.pop(key).view(-1, 1, 1, 1)
            prefix = key[: -len("alpha")]
            sd[prefix + "conv.weight"] = sd[prefix + "conv.weight"] * alpha
            sd[prefix + "conv.bias"] = sd[prefix + "conv.bias"] * alpha.view(-1)
        load_mapped(self, sd)
