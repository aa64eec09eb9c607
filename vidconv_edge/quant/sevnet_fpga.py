"""The FPGA form of a quantized SEVNet (no SE): the whole clip as ONE batch-1 4-D tensor, for FINN.

FINN streams one batch-1 tensor, but ``QuantSEVNet`` folds the frames into the batch. Here the T frames
are stacked along H with the pitch P = H + 32 rows (zero separator rows; a multiple of 32, so all five
stride-2 stages keep an integer pitch P/2^k with at least one separator row), input (1, 3, T*P, W):

- per-frame convs run on the stack; a 0/1 row mask (``RowMask``) re-zeroes the separator rows after every
  pointwise output, temporal output (module branch, stem) and downsample-shortcut output, each right after
  the quantizer of that output (where FINN turns it into an integer ``ElementwiseMul``), so that the
  next conv's padding reads zeros there as in the per-frame model;
- the 3x1x1 temporal conv is a (3, 1) conv dilated by the pitch, padding (P_k, 0);
- grouped 3x3 convs are dense convs whose channels are *interleaved* (:func:`interleaving`): the grouped
  conv's input channel j of group k sits at j*G + k and its output r of group k at r*G + k (G groups), the
  pointwise conv before it produces its channels in that order and the temporal conv after it reads them so
  (permuted copies of their weights, BN and biases: exact, per-channel max scales permute along). FINN lowers
  this dense conv to an MVAU whose weights are zero outside the groups; ``hw.steps_grouped`` then rewrites
  it as one depthwise VVAU per output r over the (H, W*g) view of the stream, storing only the grouped conv's
  own weights (in channels-last order the view is the same stream: pixel w, channel j*G + k is pixel
  w*g + j, channel k);
- the 3x3/2 average pool of a downsample shortcut is an all-ones depthwise 3x3/2 conv times 1/9;
- global average pooling over the stack is rescaled by P_k/H_k (the separator rows are zero).

Quantizers, BNs and the stem/pointwise/head layers are the quantized model's own modules (shared).
"""

from __future__ import annotations

import copy

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


def interleaving(channels: int, groups: int) -> torch.Tensor:
    """``order[j*G + k] = k*g + j`` (G = ``groups``, g = channels // G): channel j of group k moves to j*G + k."""
    g = channels // groups
    return torch.arange(channels).reshape(groups, g).t().reshape(-1)


def dense_conv(conv: QuantConv2d, order: torch.Tensor | None = None) -> QuantConv2d:
    """A grouped quantized conv as a dense one (same quantizer and options) with block-diagonal weights, its
    input and output channels in ``order`` (``None``: the grouped conv's own)."""
    w, g = conv.weight.detach(), conv.groups
    cout, cpg = w.shape[:2]
    opg = cout // g
    dense = torch.zeros(cout, cpg * g, *w.shape[2:], dtype=w.dtype)
    for i in range(g):
        dense[i * opg : (i + 1) * opg, i * cpg : (i + 1) * cpg] = w[i * opg : (i + 1) * opg]
    if order is not None:
        dense = dense[order][:, order]
    out = qconv(cpg * g, cout, conv.kernel_size, _weight_bits(conv), stride=conv.stride, padding=conv.padding,
                bias=False, return_quant_tensor=True)  # fmt: skip
    out.weight.data.copy_(dense)
    return out


def permuted_outputs(cbr: nn.Sequential, order: torch.Tensor) -> nn.Sequential:
    """A copy of a conv + BN + activation whose output channel i is the original's ``order[i]``."""
    out = copy.deepcopy(cbr)
    conv, bn = out[0], out[1]
    with torch.no_grad():
        for t in (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var):
            if t is not None:
                t.copy_(t[order])
    return out


def dilated_temporal(conv: QuantConv2d, pitch: int, order: torch.Tensor | None = None) -> QuantConv2d:
    """The (3, 1) temporal conv over (T, H*W) as a (3, 1) conv over the stack, dilated by ``pitch``; its input
    channel i is the original's ``order[i]`` (``None``: the original order)."""
    out = qconv(conv.in_channels, conv.out_channels, (3, 1), _weight_bits(conv), padding=(pitch, 0),
                dilation=(pitch, 1), bias=False, return_quant_tensor=True)  # fmt: skip
    w = conv.weight.detach()
    out.weight.data.copy_(w if order is None else w[:, order])
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
    def __init__(self, tc: nn.Module, pitch: int, order: torch.Tensor | None = None):
        super().__init__()
        self.conv, self.bn, self.act = dilated_temporal(tc.conv, pitch, order), tc.bn, tc.act

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


def _spatial(cbr: nn.Sequential, order: torch.Tensor) -> nn.Sequential:
    """The grouped conv + BN + activation with interleaved channels (``order``) in and out."""
    bn = copy.deepcopy(cbr[1])
    with torch.no_grad():
        for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
            t.copy_(t[order])
    return nn.Sequential(dense_conv(cbr[0], order), bn, cbr[2])


class FpgaModule(nn.Module):
    """A ``QSEVModule`` / ``QSEVDownsample`` on the stack at (rows h, pitch p)."""

    def __init__(self, mod: nn.Module, frames: int, h: int, p: int, mask_input: bool = False):
        super().__init__()
        self.down = hasattr(mod, "shortcut")
        h2, p2 = (h // 2, p // 2) if self.down else (h, p)
        self.add_quant = mod.add_quant
        conv = mod.spatial[0]
        if conv.groups > 1:
            order = interleaving(conv.out_channels, conv.groups)
            self.pointwise, self.spatial = permuted_outputs(mod.pointwise, order), _spatial(mod.spatial, order)
            self.temporal = Temporal(mod.temporal, p2, order)
        else:
            self.pointwise, self.spatial, self.temporal = mod.pointwise, mod.spatial, Temporal(mod.temporal, p2)
        self.mask_in, self.mask_out = RowMask(frames, h, p), RowMask(frames, h2, p2)
        # the stem's output: masked after this module's input quantizer (q(0) = 0), where FINN expects masks
        self.mask_x = RowMask(frames, h, p) if mask_input else nn.Identity()
        if self.down:
            sc = mod.shortcut
            self.cat_quant, self.pool_quant, self.shortcut = mod.cat_quant, sc.pool_quant, sc[-1]
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
        self.pool, self.head_quant = nn.AdaptiveAvgPool2d(1), qmodel.head_quant
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
