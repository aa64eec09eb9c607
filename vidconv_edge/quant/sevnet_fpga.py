"""The FPGA form of a quantized SEVNet (no SE): the whole clip as ONE batch-1 4-D tensor, for FINN.

FINN streams one batch-1 tensor, but ``QuantSEVNet`` folds the frames into the batch. Here the T frames
are stacked along H with the pitch P = H + 32 rows (zero separator rows; a multiple of 32, so all five
stride-2 stages keep an integer pitch P/2^k with at least one separator row), input (1, 3, T*P, W):

- per-frame convs run on the stack; a 0/1 row mask (``RowMask``) re-zeroes the separator rows after every
  pointwise output, temporal output (module branch, stem) and downsample-shortcut output, each right after
  the quantizer of that output (where FINN turns it into an integer ``ElementwiseMul``), so that the
  next conv's padding reads zeros there as in the per-frame model;
- the 3x1x1 temporal conv is a (3, 1) conv dilated by the pitch, padding (P_k, 0);
- grouped 3x3 convs are dense convs with block-diagonal weights (exact: per-channel max scales and the
  integer weights are unchanged, the zeros stay zero);
- the 3x3/2 average pool of a downsample shortcut is an all-ones depthwise 3x3/2 conv times 1/9;
- global average pooling over the stack is rescaled by P_k/H_k (the separator rows are zero).

Quantizers, BNs and the stem/pointwise/head layers are the quantized model's own modules (shared).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from brevitas.nn import QuantConv2d
from brevitas.quant_tensor import QuantTensor

from vidconv_edge.errors import UserError
from vidconv_edge.quant.layers import qconv, value
from vidconv_edge.quant.quantizers import OnesWeightQuant

SEPARATOR_ROWS = 32  # 2^5: five stride-2 stages


def pitch_of(size: int) -> int:
    """Rows per frame in the stacked clip: the frame and ``SEPARATOR_ROWS`` zero rows."""
    return size + SEPARATOR_ROWS


def stack_clip(clip: torch.Tensor, pitch: int) -> torch.Tensor:
    """(B, T, C, H, W) clips -> (B, C, T*pitch, W): frames stacked along H, zero separator rows."""
    b, t, c, h, w = clip.shape
    x = clip.new_zeros(b, c, t, pitch, w)
    x[:, :, :, :h] = clip.permute(0, 2, 1, 3, 4)
    return x.reshape(b, c, t * pitch, w)


class RowMask(nn.Module):
    """Multiply by a constant 0/1 (1, 1, T*pitch, 1) mask: 1 on the ``rows`` frame rows of each pitch; a
    ``QuantTensor`` stays one (same scale: the masked values are on the same grid)."""

    def __init__(self, frames: int, rows: int, pitch: int):
        super().__init__()
        m = torch.zeros(frames, pitch)
        m[:, :rows] = 1
        self.register_buffer("mask", m.reshape(1, 1, frames * pitch, 1))

    def forward(self, x):
        if isinstance(x, QuantTensor):
            return x.set(value=x.value * self.mask)
        return x * self.mask


def dense_conv(conv: QuantConv2d) -> QuantConv2d:
    """A grouped quantized conv as a dense one with block-diagonal weights (same quantizer and options)."""
    w, g = conv.weight.detach(), conv.groups
    cout, cpg = w.shape[:2]
    opg = cout // g
    dense = torch.zeros(cout, cpg * g, *w.shape[2:], dtype=w.dtype)
    for i in range(g):
        dense[i * opg : (i + 1) * opg, i * cpg : (i + 1) * cpg] = w[i * opg : (i + 1) * opg]
    out = qconv(cpg * g, cout, conv.kernel_size, _weight_bits(conv), stride=conv.stride, padding=conv.padding,
                bias=False, return_quant_tensor=True)  # fmt: skip
    out.weight.data.copy_(dense)
    return out


def dilated_temporal(conv: QuantConv2d, pitch: int) -> QuantConv2d:
    """The (3, 1) temporal conv over (T, H*W) as a (3, 1) conv over the stack, dilated by ``pitch``."""
    out = qconv(conv.in_channels, conv.out_channels, (3, 1), _weight_bits(conv), padding=(pitch, 0),
                dilation=(pitch, 1), bias=False, return_quant_tensor=True)  # fmt: skip
    out.weight.data.copy_(conv.weight.detach())
    return out


def _weight_bits(conv: QuantConv2d) -> int:
    return int(conv.weight_quant.bit_width())


class OnesPool(nn.Module):
    """AvgPool2d(3, 2, 1) (count_include_pad) as an all-ones depthwise 3x3/2 conv times 1/9."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = QuantConv2d(channels, channels, 3, stride=2, padding=1, groups=channels, bias=False,
                                weight_quant=OnesWeightQuant)  # fmt: skip
        with torch.no_grad():
            self.conv.weight.fill_(1.0)

    def forward(self, x):
        return value(self.conv(x)) * (1.0 / 9.0)


class Temporal(nn.Module):
    def __init__(self, tc: nn.Module, pitch: int):
        super().__init__()
        self.conv, self.bn, self.act = dilated_temporal(tc.conv, pitch), tc.bn, tc.act

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


def _spatial(cbr: nn.Sequential) -> nn.Sequential:
    conv = cbr[0]
    return nn.Sequential(dense_conv(conv) if conv.groups > 1 else conv, cbr[1], cbr[2])


class FpgaModule(nn.Module):
    """A ``QSEVModule`` / ``QSEVDownsample`` on the stack at (rows h, pitch p)."""

    def __init__(self, mod: nn.Module, frames: int, h: int, p: int, mask_input: bool = False):
        super().__init__()
        self.down = hasattr(mod, "shortcut")
        h2, p2 = (h // 2, p // 2) if self.down else (h, p)
        self.add_quant, self.pointwise = mod.add_quant, mod.pointwise
        self.spatial = _spatial(mod.spatial)
        self.temporal = Temporal(mod.temporal, p2)
        self.mask_in, self.mask_out = RowMask(frames, h, p), RowMask(frames, h2, p2)
        # the stem's output: masked after this module's input quantizer (q(0) = 0), where FINN expects masks
        self.mask_x = RowMask(frames, h, p) if mask_input else nn.Identity()
        if self.down:
            sc = mod.shortcut
            self.cat_quant, self.pool_quant, self.shortcut = mod.cat_quant, sc.pool_quant, sc._modules["1"]
            self.pool = OnesPool(mod.pointwise[0].in_channels)

    def branch(self, x):
        return self.temporal(self.spatial(self.mask_in(self.pointwise(x))))

    def forward(self, x):
        x = self.mask_x(self.add_quant(x))
        if not self.down:
            return value(x) + self.mask_out(value(self.add_quant(self.branch(x))))
        b = self.mask_out(self.cat_quant(self.branch(x)))
        s = self.mask_out(self.cat_quant(self.shortcut(self.pool_quant(self.pool(x)))))
        return torch.cat([b, s], dim=1)


class SEVNetFpga(nn.Module):
    """The FPGA form of a ``QuantSEVNet``: stacked uint8 clip (1, 3, T*P, W) -> logits (1, classes)."""

    def __init__(self, qmodel: nn.Module):
        super().__init__()
        cfg = qmodel.cfg
        if cfg.se:
            raise UserError(se_refusal(qmodel.name))
        self.name, self.frames, self.size = qmodel.name, cfg.frames, cfg.img_size
        self.pitch = pitch_of(cfg.img_size)
        t, h, p = cfg.frames, cfg.img_size // 2, self.pitch // 2
        self.input_quant, self.stem_conv = qmodel.input_quant, qmodel.stem[0]
        self.stem_temporal = Temporal(qmodel.stem[1], p)
        mods = []
        for stage in qmodel.stages:
            for mod in stage:
                mods.append(FpgaModule(mod, t, h, p, mask_input=not mods))
                if mods[-1].down:
                    h, p = h // 2, p // 2
        self.mods = nn.Sequential(*mods)
        self.rows, self.last_pitch = h, p
        self.pool, self.head_quant = qmodel.pool, qmodel.head_quant
        self.fc, self.out_quant = qmodel.fc, qmodel.out_quant
        self.eval()

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, self.frames * self.pitch, self.size)

    def stack(self, clip: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) clips -> the stacked input (B, 3, T*P, W)."""
        return stack_clip(clip, self.pitch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_temporal(self.stem_conv(self.input_quant(x)))
        x = self.mods(x)
        x = self.pool(x) * (self.last_pitch / self.rows)
        return self.out_quant(self.fc(self.head_quant(x).flatten(1)))


def fpga_form(qmodel: nn.Module) -> SEVNetFpga:
    """The FPGA form of a quantized SEVNet; UserError for other models."""
    from vidconv_edge.quant.sevnet import QuantSEVNet

    if not isinstance(qmodel, QuantSEVNet):
        raise UserError(f"model '{getattr(qmodel, 'name', '?')}' has no FPGA form (only quantized SEVNets do)")
    return SEVNetFpga(qmodel.eval())


def se_refusal(name: str) -> str:
    return (
        f"model '{name}' uses squeeze-excitation, which cannot be built for the FPGA: its gate is computed from "
        "the whole clip (a global pool over all T frames before any output of the module can be produced, so "
        "the module cannot stream), and its sigmoid exists in FINN only as a float op (PWPolyF), not as an "
        "integer HW layer. Train and build a variant without SE (e.g. sevnet_edge)"
    )
