"""Quantized ``vic_edge`` (Brevitas): the float VidConv edge network with integer-friendly structure.

Structure (per DESIGN "FINN facts"): uint8 pixels in (scale 1, normalisation folded into the stem
conv), per-channel int weights, per-tensor activations, BN kept as BN (FINN absorbs it into the next
thresholds), one shared quantizer for both inputs of every residual add and for S and tile(T), alpha
folded into T's weights, tile(T) as the padded all-ones depthwise conv dilated by the tile size,
the early-net output quantized (the frame-buffer / partition boundary), 8-bit logits.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from vidconv_edge.errors import UserError
from vidconv_edge.models.base import VideoClassifier
from vidconv_edge.models.layers import frames_to_collage
from vidconv_edge.models.vidconv import VidConv, VidConvConfig
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
from brevitas.nn import QuantConv2d


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


class QMlp(nn.Module):
    def __init__(self, dim: int, hidden: int, bits: PartBits):
        super().__init__()
        self.in_quant = qact(bits.act, quant_tensor=True)
        self.fc1 = qconv(dim, hidden, 1, bits.weight)
        self.act = qrelu(bits.act, quant_tensor=True)
        self.fc2 = qconv(hidden, dim, 1, bits.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.in_quant(x))))


class QBlock(nn.Module):
    """``x + mlp(bn(q(S) + tile(q(T))))`` with ``add_quant`` shared by x and the branch output."""

    def __init__(self, dim: int, cfg: VidConvConfig, tile: tuple[int, int] | None, bits: PartBits):
        super().__init__()
        self.add_quant = qact(bits.act, quant_tensor=True)
        self.conv_dw = qconv(dim, dim, 7, bits.weight, padding=3, groups=dim, return_quant_tensor=True)
        self.temporal = QTemporal(dim, tuple(cfg.layout), tile, bits) if tile is not None else None
        self.mix_quant = qact(bits.act) if tile is not None else None
        self.norm = AccBatchNorm2d(dim)
        self.mlp = QMlp(dim, cfg.mlp_ratio * dim, bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.add_quant(x)
        y = self.conv_dw(x)
        if self.temporal is not None:
            y = self.mix_quant(y) + self.temporal(x, self.mix_quant)
        y = self.mlp(self.norm(y))
        return value(x) + value(self.add_quant(y))


class QDownsample(nn.Module):
    """BN -> quant -> 2x2 stride-2 conv; children named ``0`` (BN) and ``1`` (conv) as the float Sequential."""

    def __init__(self, cin: int, cout: int, bits: PartBits):
        super().__init__()
        self.add_module("0", nn.BatchNorm2d(cin))
        self.in_quant = qact(bits.act, quant_tensor=True)
        self.add_module("1", qconv(cin, cout, 2, bits.weight, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self[1](self.in_quant(self[0](x)))

    def __getitem__(self, i: int) -> nn.Module:
        return self._modules[str(i)]


class QStage(nn.Module):
    def __init__(self, downsample: nn.Module, blocks: list[nn.Module]):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


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


class QuantVidConv(VideoClassifier):
    """Brevitas version of a BN/ReLU VidConv (``vic_edge``); input: uint8 pixel values as float (B, T, 3, H, W)."""

    supports_streaming = True
    input_is_uint8 = True

    def __init__(self, cfg: VidConvConfig, bits: QuantBits, name: str = "vic_edge"):
        super().__init__()
        if cfg.norm != "bn" or cfg.act != "relu" or cfg.neck_dim or cfg.ls_init is not None:
            raise UserError(
                f"model '{name}' cannot be quantized for FINN: it needs BN + ReLU, no neck and no layer scale "
                f"(got norm={cfg.norm}, act={cfg.act}, neck_dim={cfg.neck_dim}, ls_init={cfg.ls_init}); "
                "use the QDQ path (--target qdq) for full models"
            )
        cfg.validate()
        self.cfg, self.name, self.bits = cfg, name, bits
        self.num_classes = cfg.num_classes
        self.layout = tuple(cfg.layout)
        self.float_input_spec = VidConv(cfg, name).input_spec
        self.input_spec = pixel_input_spec(self.float_input_spec)
        dims, depths = cfg.dims, cfg.depths
        early, later = bits.early, bits.later
        self.input_quant = pixel_quant()
        self.stem = nn.Sequential(
            qconv(3, dims[0], 4, early.weight, stride=4, return_quant_tensor=True), AccBatchNorm2d(dims[0])
        )
        stages = []
        for i in range(4):
            pb = early if i < cfg.stack_stage else later
            down = nn.Identity() if i == 0 else QDownsample(dims[i - 1], dims[i], pb)
            tile = (cfg.img_size // (4 * 2**i),) * 2
            temporal = i >= cfg.stack_stage and cfg.block == "vidconv"
            blocks = [QBlock(dims[i], cfg, tile if temporal else None, pb) for _ in range(depths[i])]
            stages.append(QStage(down, blocks))
        self.stages = nn.ModuleList(stages)
        self.early_quant = qact(early.act)
        self.head = QHead(dims[-1], cfg.num_classes, later, cfg.drop_rate)

    # -- the float model's API ---------------------------------------------------------------------
    def forward_early(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8-valued frames -> (N, C, h', w') quantized features."""
        x = self.stem(self.input_quant(frames))
        for stage in list(self.stages)[: self.cfg.stack_stage]:  # list: slicing a ModuleList builds a new one
            x = stage(x)
        return self.early_quant(x)

    def collage(self, feats: torch.Tensor) -> torch.Tensor:
        return frames_to_collage(feats, self.layout)

    def forward_later(self, collage: torch.Tensor) -> torch.Tensor:
        x = collage
        for stage in list(self.stages)[self.cfg.stack_stage :]:
            x = stage(x)
        return self.head(x)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        self.check_clip(clip)
        b, t = clip.shape[:2]
        feats = self.forward_early(clip.reshape(b * t, *clip.shape[2:]))
        return self.forward_later(self.collage(feats))

    def early_shape(self) -> tuple[int, int, int]:
        s = self.cfg.stack_stage
        side = self.cfg.img_size // (4 * 2 ** (s - 1))
        return (self.cfg.dims[s - 1], side, side)

    def part_of(self, module_name: str) -> str:
        """``early`` or ``later``: where a submodule (by qualified name) runs."""
        if module_name.startswith(("input_quant", "stem", "early_quant")):
            return "early"
        if module_name.startswith("stages."):
            return "early" if int(module_name.split(".")[1]) < self.cfg.stack_stage else "later"
        return "later"

    def config_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self.cfg)

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
