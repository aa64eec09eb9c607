"""The exportable parts of a video model: the whole clip, the per-frame early-net, the later-net, and a
quantized SEVNet's FPGA form (the whole clip stacked in one batch-1 tensor, ``quant.sevnet_fpga``)."""

from __future__ import annotations

import torch
import torch.nn as nn

from vidconv_edge.errors import UserError

PARTS = ("full", "early", "later", "fpga")


class EarlyNet(nn.Module):
    """One frame (B, 3, H, W) -> its early-net feature map."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model.forward_early(frames)


class LaterNet(nn.Module):
    """A collage of early-net maps (B, C, h*h', w*w') -> logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, collage: torch.Tensor) -> torch.Tensor:
        return self.model.forward_later(collage)


def part_module(model: nn.Module, part: str) -> tuple[nn.Module, torch.Tensor, list[str], list[str]]:
    """The module for ``part`` (eval mode), an example input (batch 1), and its input/output names."""
    spec = model.input_spec
    if part not in PARTS:
        raise UserError(f"unknown part '{part}': choose one of {', '.join(PARTS)}")
    if part == "full":
        return model.eval(), torch.zeros(1, spec.frames, 3, spec.size, spec.size), ["clip"], ["logits"]
    if part == "fpga":
        from vidconv_edge.quant.sevnet_fpga import fpga_form

        fpga = fpga_form(model)
        return fpga, torch.zeros(fpga.input_shape), ["stacked_clip"], ["logits"]
    if not getattr(model, "supports_streaming", False):
        raise UserError(f"model '{model.name}' has no early/later split (only VidConv models do); use --part full "
                        "(build-fpga builds a quantized SEVNet's one-tensor FPGA form, part 'fpga')")  # fmt: skip
    if part == "early":
        return EarlyNet(model).eval(), torch.zeros(1, 3, spec.size, spec.size), ["frame"], ["features"]
    c, th, tw = model.early_shape()
    h, w = model.layout
    return LaterNet(model).eval(), torch.zeros(1, c, h * th, w * tw), ["collage"], ["logits"]
