"""ImageNet ConvNeXt weights (timm and official layouts) load into the VidConv backbone."""

from __future__ import annotations

import re

import pytest
import torch

from vidconv_edge.errors import UserError
from vidconv_edge.models import create_model
from vidconv_edge.models.pretrained import load_imagenet_convnext


def timm_to_official(sd: dict) -> dict:
    """The inverse of timm's checkpoint_filter_fn renames, to build an official-layout checkpoint."""
    out = {}
    for k, v in sd.items():
        k = re.sub(r"^stem\.0\.", "downsample_layers.0.0.", k)
        k = re.sub(r"^stem\.1\.", "downsample_layers.0.1.", k)
        k = re.sub(r"^stages\.(\d+)\.downsample\.(\d+)\.", r"downsample_layers.\1.\2.", k)
        k = re.sub(r"^stages\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.\2.", k)
        k = k.replace(".conv_dw.", ".dwconv.").replace(".mlp.fc1.", ".pwconv1.").replace(".mlp.fc2.", ".pwconv2.")
        k = re.sub(r"^head\.norm\.", "norm.", k)
        k = re.sub(r"^head\.fc\.", "head.", k)
        out[k] = v
    return out


@pytest.fixture(scope="module")
def convnext(timm):
    torch.manual_seed(1)
    return timm.create_model("convnext_tiny", pretrained=False).eval()


def timm_stage2(convnext, frames):
    x = convnext.stem(frames)
    return convnext.stages[1](convnext.stages[0](x))


@pytest.mark.parametrize("layout", ["timm", "official"])
def test_early_net_equals_timm_stage2(convnext, tmp_path, layout):
    sd = convnext.state_dict()
    if layout == "official":
        sd = timm_to_official(sd)
    path = tmp_path / "convnext_tiny.pth"
    torch.save({"model": sd}, path)
    model = create_model("vic_tiny", img_size=64).eval()
    report = load_imagenet_convnext(model, path)
    assert not report.mismatched
    assert all("temporal" in k or k.startswith(("neck.", "head.")) for k in report.missing), report.missing
    assert any(k.startswith("head.fc") or k == "head.weight" for k in report.unexpected)
    frames = torch.randn(9, 3, 64, 64)
    with torch.no_grad():
        ours, ref = model.forward_early(frames), timm_stage2(convnext, frames)
    assert (ours - ref).abs().max() <= 1e-5
    # the later stages loaded too: plain ConvNeXt blocks match timm's stage 3 on the collage
    torch.testing.assert_close(model.stages[3].downsample[1].weight, convnext.stages[3].downsample[1].weight)
    torch.testing.assert_close(model.final_norm.weight, convnext.head.norm.weight)


def test_no_neck_uses_timm_head_norm(convnext):
    model = create_model("vic_tiny", img_size=64, neck_dim=0)
    load_imagenet_convnext(model, convnext.state_dict())
    torch.testing.assert_close(model.head.norm.weight, convnext.head.norm.weight)


def test_wrong_family_or_file(tmp_path, convnext):
    with pytest.raises(UserError, match="BatchNorm"):
        load_imagenet_convnext(create_model("vic_edge"), convnext.state_dict())
    with pytest.raises(UserError, match="not found"):
        load_imagenet_convnext(create_model("vic_tiny"), tmp_path / "none.pth")
    torch.save({"foo.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="no ConvNeXt weights"):
        load_imagenet_convnext(create_model("vic_tiny"), tmp_path / "other.pth")
