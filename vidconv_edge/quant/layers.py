"""Quantized building blocks shared by the quantized edge models, and the float -> quant weight mapping."""

from __future__ import annotations

import torch
import torch.nn as nn
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU

from vidconv_edge.errors import UserError
from vidconv_edge.models.base import InputSpec
from vidconv_edge.quant.quantizers import PixelQuant, act_quant, weight_quant

OUTPUT_BITS = 8  # logits stay 8-bit whatever the activation bits, so argmax ties stay rare


def qconv(cin: int, cout: int, kernel, bits: int, **kwargs) -> QuantConv2d:
    return QuantConv2d(cin, cout, kernel, weight_quant=weight_quant(bits), **kwargs)


def qlinear(cin: int, cout: int, bits: int) -> QuantLinear:
    return QuantLinear(cin, cout, bias=True, weight_quant=weight_quant(bits))


def qact(bits: int, signed: bool = True) -> QuantIdentity:
    return QuantIdentity(act_quant=act_quant(bits, signed))


def qrelu(bits: int) -> QuantReLU:
    return QuantReLU(act_quant=act_quant(bits, signed=False))


def pixel_quant() -> QuantIdentity:
    return QuantIdentity(act_quant=PixelQuant)


PIXEL_MEAN = (0.0, 0.0, 0.0)
PIXEL_STD = (1 / 255, 1 / 255, 1 / 255)


def pixel_input_spec(spec: InputSpec) -> InputSpec:
    """Spec of a model fed raw pixel values 0..255: ``normalize(x, mean, std) = (x/255 - 0) / (1/255) = x``."""
    return InputSpec(spec.frames, spec.size, PIXEL_MEAN, PIXEL_STD, spec.layout)


def fold_normalisation(weight: torch.Tensor, bias: torch.Tensor | None, mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weights for raw pixels 0..255 equal to ``conv((x/255 - mean) / std)`` (exact without padding)."""
    mean = torch.tensor(mean, dtype=weight.dtype).view(1, -1, 1, 1)
    std = torch.tensor(std, dtype=weight.dtype).view(1, -1, 1, 1)
    w = weight / (255.0 * std)
    b = bias.clone() if bias is not None else torch.zeros(weight.shape[0], dtype=weight.dtype)
    b = b - (weight * (mean / std)).sum(dim=(1, 2, 3))
    return w, b


def load_mapped(qmodel: nn.Module, float_sd: dict[str, torch.Tensor]) -> None:
    """Load a (rewritten) float state dict; only quantizer state and fixed kernels may be missing."""
    missing, unexpected = qmodel.load_state_dict(float_sd, strict=False)
    if unexpected:
        raise UserError(f"float weights do not fit the quantized '{qmodel.name}': unexpected {unexpected[:5]}")
    own = {k for k in missing if "_quant" not in k and not k.endswith(("tile.conv.weight",))}
    if own:
        raise UserError(f"float weights do not fit the quantized '{qmodel.name}': missing {sorted(own)[:5]}")


@torch.no_grad()
def merge_bn_into_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode BN that directly follows ``conv`` into its weights and bias (in place).

    With per-output-channel weight scales from max statistics the integer weights do not change:
    only each channel's scale and the bias do, so the quantized function stays the same.
    """
    k = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight.mul_(k.view(-1, *([1] * (conv.weight.dim() - 1))))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    new_bias = (bias - bn.running_mean) * k + bn.bias
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)


def merged_batchnorm(qmodel: nn.Module) -> nn.Module:
    """A copy of ``qmodel`` (eval) with every conv -> BN pair merged (for export; ``conv_bn_pairs`` lists them)."""
    import copy

    merged = copy.deepcopy(qmodel).eval()
    for conv, owner, attr in merged.conv_bn_pairs():
        merge_bn_into_conv(conv, getattr(owner, attr))
        setattr(owner, attr, nn.Identity())
    return merged
