"""Quantized building blocks shared by the quantized edge models, and the float -> quant weight mapping."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant.scaled_int import Int32Bias
from brevitas.quant_tensor import QuantTensor

from vidconv_edge.errors import UserError
from vidconv_edge.models.base import InputSpec
from vidconv_edge.quant.quantizers import PixelQuant, act_quant, weight_quant

OUTPUT_BITS = 8  # logits stay 8-bit whatever the activation bits, so argmax ties stay rare


def qconv(cin: int, cout: int, kernel, bits: int, **kwargs) -> QuantConv2d:
    """A quantized conv; its bias is an int32 on the accumulator grid (input scale x weight scale), as
    int8 runtimes (ORT's QLinearConv, FINN's thresholds) add it, so it needs a quantized input
    (a ``QuantTensor``: the feeding quantizer built with ``quant_tensor=True``)."""
    return QuantConv2d(cin, cout, kernel, weight_quant=weight_quant(bits), bias_quant=Int32Bias, **kwargs)


def qlinear(cin: int, cout: int, bits: int) -> QuantLinear:
    """A quantized linear layer with an int32 bias, as :func:`qconv`."""
    return QuantLinear(cin, cout, bias=True, weight_quant=weight_quant(bits), bias_quant=Int32Bias)


def qact(bits: int, signed: bool = True, quant_tensor: bool = False) -> QuantIdentity:
    """``quant_tensor``: return a ``QuantTensor`` (the input of a layer with a bias)."""
    return QuantIdentity(act_quant=act_quant(bits, signed), return_quant_tensor=quant_tensor)


def qrelu(bits: int, quant_tensor: bool = False) -> QuantReLU:
    return QuantReLU(act_quant=act_quant(bits, signed=False), return_quant_tensor=quant_tensor)


def pixel_quant() -> QuantIdentity:
    """The uint8 pixel input (a ``QuantTensor``: the stem conv's bias is on its accumulator grid)."""
    return QuantIdentity(act_quant=PixelQuant, return_quant_tensor=True)


def value(x):
    """The (dequantized) tensor of ``x``, a ``QuantTensor`` or a tensor."""
    return x.value if isinstance(x, QuantTensor) else x


class AccBatchNorm2d(nn.BatchNorm2d):
    """BN after a quantized conv (which returns a ``QuantTensor``): in eval its shift ``beta - k*mean``
    is rounded to the conv's accumulator grid times ``|k|``, so that the conv with this BN merged in has
    an int32 bias, as int8 runtimes compute it (ORT quantizes a float bias to int32). Training, and
    float inputs: a plain BN."""

    def rounded_shift(self, acc_scale: torch.Tensor) -> torch.Tensor:
        """``beta - k*mean`` rounded to the grid ``acc_scale * |k|`` (``acc_scale``: the conv's, per channel)."""
        k = self.weight / torch.sqrt(self.running_var + self.eps)
        grid = acc_scale.reshape(-1) * k.abs()
        return torch.round((self.bias - k * self.running_mean) / grid) * grid

    def forward(self, x):
        if self.training or not isinstance(x, QuantTensor):
            return super().forward(value(x))
        k = self.weight / torch.sqrt(self.running_var + self.eps)
        bias = self.rounded_shift(x.scale) + k * self.running_mean
        return F.batch_norm(x.value, self.running_mean, self.running_var, self.weight, bias, False, 0.0, self.eps)


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
def merge_bn_into_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d, acc_scale: torch.Tensor | None = None) -> None:
    """Fold an eval-mode BN that directly follows ``conv`` into its weights and bias (in place).

    With per-output-channel weight scales from max statistics the integer weights do not change:
    only each channel's scale and the bias do, so the quantized function stays the same. With the conv's
    accumulator scale ``acc_scale`` (an :class:`AccBatchNorm2d`), the bias is the conv's int32 bias and the
    rounded shift, as that BN computes them: on the merged conv's accumulator grid.
    """
    k = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight.mul_(k.view(-1, *([1] * (conv.weight.dim() - 1))))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    if acc_scale is None:
        new_bias = (bias - bn.running_mean) * k + bn.bias
    else:
        step = acc_scale.reshape(-1)
        new_bias = k * torch.round(bias / step) * step + bn.rounded_shift(acc_scale)
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)


@torch.no_grad()
def _accumulator_scales(qmodel: nn.Module, convs: list[nn.Module]) -> dict[int, torch.Tensor]:
    """Output scale (input scale x weight scale) of each conv returning a ``QuantTensor``: one black clip."""
    scales: dict[int, torch.Tensor] = {}

    def record(module, _inputs, output):
        if isinstance(output, QuantTensor):
            scales[id(module)] = output.scale.detach()

    hooks = [c.register_forward_hook(record) for c in convs]
    try:
        spec = qmodel.input_spec
        qmodel(torch.zeros(1, spec.frames, 3, spec.size, spec.size))
    finally:
        for h in hooks:
            h.remove()
    return scales


def merged_batchnorm(qmodel: nn.Module) -> nn.Module:
    """A copy of ``qmodel`` (eval) with every conv -> BN pair merged (for export; ``conv_bn_pairs`` lists them)."""
    import copy

    merged = copy.deepcopy(qmodel).eval()
    pairs = merged.conv_bn_pairs()
    scales = _accumulator_scales(merged, [conv for conv, _, _ in pairs])
    for conv, owner, attr in pairs:
        bn = getattr(owner, attr)
        merge_bn_into_conv(conv, bn, scales.get(id(conv)) if isinstance(bn, AccBatchNorm2d) else None)
        conv.return_quant_tensor = False  # what the BN returned: the next layer sees the same input type
        setattr(owner, attr, nn.Identity())
    return merged
