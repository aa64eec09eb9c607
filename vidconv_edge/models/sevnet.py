"""SEVNet: Simple and Efficient Video Networks (../shared/seeds/sevnet-paper.txt), as plain 2D ops.

Activations flow as per-frame maps (B*T, C, H, W); T is fixed at construction. A 1 x k x k 3D conv is
a 2D conv per frame; the 3 x 1 x 1 temporal conv is a (3, 1) 2D conv over (T, H*W). Both are exactly
the paper's 3D convs with the same weights (the test checks it against ``nn.Conv3d``).

- SEV module: 1x1x1 conv -> 1x3x3 group conv (groups of width G) -> 3x1x1 conv, BN+ReLU after each,
  residual add. SE variant: squeeze-excitation (r=4) on the residual branch before the add.
- downsample module (first of each stage): main branch at the input width with the stride-2 3x3 group
  conv, concatenated with a shortcut of 3x3/2 average pooling + 1x1x1 conv: channels double.
- stem: 1x7x7 stride-2 conv (4G) + 3x1x1 conv (4G); stages (3, 4, 6, 3) at 8G, 16G, 32G, 64G;
  global average pool, dropout, FC.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidconv_edge.errors import UserError
from vidconv_edge.models.base import InputSpec, VideoClassifier
from vidconv_edge.models.registry import option_tuple, register_model


@dataclass
class SEVNetConfig:
    group_width: int = 8
    depths: tuple[int, ...] = (3, 4, 6, 3)
    se: bool = False
    se_ratio: int = 4
    frames: int = 16
    img_size: int = 224
    num_classes: int = 174
    drop_rate: float = 0.5
    stem_width: int | None = None  # default 4 * G
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def validate(self) -> None:
        if self.group_width < 1:
            raise UserError(f"group width must be >= 1, got {self.group_width}")
        if self.img_size % 32 or self.img_size < 32:
            raise UserError(f"input size {self.img_size} not allowed: it must be a positive multiple of 32")
        if self.frames < 1:
            raise UserError(f"frames must be >= 1, got {self.frames}")
        if len(self.depths) != 4 or min(self.depths) < 1:
            raise UserError("depths needs 4 entries >= 1 (one per stage)")


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class TemporalConv(nn.Module):
    """3x1x1 conv (padding 1 in time) + BN + ReLU on per-frame maps, as a (3, 1) 2D conv over (T, H*W)."""

    def __init__(self, cin: int, cout: int, frames: int):
        super().__init__()
        self.frames = frames
        self.conv, self.bn, self.act = self.make_layers(cin, cout)

    def make_layers(self, cin: int, cout: int) -> tuple[nn.Module, nn.Module, nn.Module]:
        """The (3, 1) conv, its BN and activation."""
        return nn.Conv2d(cin, cout, (3, 1), padding=(1, 0), bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        t = self.frames
        y = x.reshape(n // t, t, c, h * w).permute(0, 2, 1, 3)  # (B, C, T, H*W)
        y = self.act(self.bn(self.conv(y)))
        return y.permute(0, 2, 1, 3).reshape(n, -1, h, w)


class SqueezeExcite(nn.Module):
    """SE over the whole clip (pool over T, H, W), reduction ratio r, on per-frame maps."""

    def __init__(self, channels: int, frames: int, ratio: int):
        super().__init__()
        self.frames = frames
        self.fc1 = nn.Conv2d(channels, channels // ratio, 1)
        self.fc2 = nn.Conv2d(channels // ratio, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        t = self.frames
        clip = x.reshape(n // t, t, c, h * w).permute(0, 2, 1, 3)  # (B, C, T, H*W)
        s = F.adaptive_avg_pool2d(clip, 1)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))  # (B, C, 1, 1)
        return (clip * s).permute(0, 2, 1, 3).reshape(n, c, h, w)


class SEVModule(nn.Module):
    """The SEV module (paper Fig. 2a): channel-wise, spatial-grouped, temporal conv and a residual add."""

    def __init__(self, channels: int, cfg: SEVNetConfig, stride: int = 1):
        super().__init__()
        g = cfg.group_width
        if channels % g:
            raise UserError(f"{channels} channels are not divisible by the group width {g}")
        self.pointwise = self.make_conv_bn_relu(channels, channels, 1)
        self.spatial = self.make_conv_bn_relu(channels, channels, 3, stride=stride, padding=1, groups=channels // g)
        self.temporal = self.make_temporal(channels, cfg.frames)
        self.se = SqueezeExcite(channels, cfg.frames, cfg.se_ratio) if cfg.se else None

    def make_conv_bn_relu(self, cin: int, cout: int, kernel, **kwargs) -> nn.Module:
        return ConvBNReLU(cin, cout, kernel, **kwargs)

    def make_temporal(self, channels: int, frames: int) -> nn.Module:
        return TemporalConv(channels, channels, frames)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        y = self.temporal(self.spatial(self.pointwise(x)))
        return self.se(y) if self.se is not None else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class SEVDownsample(SEVModule):
    """Downsample SEV module (paper Fig. 2b): main branch (stride 2) || avgpool + 1x1 conv; 2x channels."""

    def __init__(self, channels: int, cfg: SEVNetConfig):
        super().__init__(channels, cfg, stride=2)
        pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.shortcut = nn.Sequential(pool, self.make_conv_bn_relu(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch(x), self.shortcut(x)], dim=1)


class SEVNet(VideoClassifier):
    """SEVNet-G: stem, 4 stages of SEV modules (first one downsamples), GAP, dropout, FC."""

    def __init__(self, cfg: SEVNetConfig, name: str = "sevnet"):
        super().__init__()
        cfg.validate()
        self.cfg, self.name = cfg, name
        self.num_classes = cfg.num_classes
        self.input_spec = InputSpec(cfg.frames, cfg.img_size, tuple(cfg.mean), tuple(cfg.std))
        width = cfg.stem_width or 4 * cfg.group_width
        self.stem = self.make_stem(width)
        stages = []
        for i, depth in enumerate(cfg.depths):
            mods = [self.make_downsample(width, i)]
            width *= 2
            mods += [self.make_module(width, i) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*mods))
        self.stages = nn.ModuleList(stages)
        self.drop = nn.Dropout(cfg.drop_rate)
        self.fc = self.make_classifier(width)
        self.num_features = width

    # -- layer factories (a quantized subclass overrides them) -------------------------------------
    def make_stem(self, width: int) -> nn.Module:
        """1x7x7 stride-2 conv + 3x1x1 conv, ``width`` channels."""
        return nn.Sequential(
            ConvBNReLU(3, width, 7, stride=2, padding=3),
            TemporalConv(width, width, self.cfg.frames),
        )

    def make_downsample(self, channels: int, stage: int) -> nn.Module:
        """The first module of ``stage`` (0..3): ``channels`` in, twice as many out."""
        return SEVDownsample(channels, self.cfg)

    def make_module(self, channels: int, stage: int) -> nn.Module:
        return SEVModule(channels, self.cfg)

    def make_classifier(self, dim: int) -> nn.Module:
        return nn.Linear(dim, self.cfg.num_classes)

    # -- forward -------------------------------------------------------------------------------------
    def forward_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(B*T, 3, H, W) frames, time-ordered per clip -> (B*T, C, h, w) per-frame maps of the last stage."""
        x = self.stem(frames)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C) pooled features -> (B, num_classes) logits."""
        return self.fc(self.drop(x))

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        self.check_clip(clip)
        b, t = clip.shape[:2]
        x = self.forward_frames(clip.reshape(b * t, *clip.shape[2:]))
        n, c, h, w = x.shape
        x = x.reshape(b, t, c, h * w).permute(0, 2, 1, 3)  # (B, C, T, H*W)
        return self.forward_head(F.adaptive_avg_pool2d(x, 1).flatten(1))

    def stage_parts(self) -> dict[str, list[str]]:
        parts = {"stem": ["stem"]}
        for i in range(len(self.stages)):
            parts[f"stage{i + 2}"] = [f"stages.{i}"]
        parts["head"] = ["fc"]
        return parts

    def config_dict(self) -> dict:
        return asdict(self.cfg)


def _build(name: str, base: dict, **kwargs) -> SEVNet:
    params = {**base, **kwargs}
    if "G" in params:
        params["group_width"] = params.pop("G")
    known = set(SEVNetConfig.__dataclass_fields__)
    unknown = set(params) - known
    if unknown:
        raise UserError(f"model '{name}': unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
    for key in ("depths", "mean", "std"):
        if key in params:
            params[key] = option_tuple(name, key, params[key])
    return SEVNet(SEVNetConfig(**params), name=name)


@register_model("sevnet")
def sevnet(**kwargs) -> SEVNet:
    """SEVNet with any group width: sevnet(group_width=G, se=False), 16x224x224, 174 classes."""
    return _build("sevnet", {}, **kwargs)


@register_model("sevnet")
def sevnet_g6(**kwargs) -> SEVNet:
    """SEVNet-G6: group width 6, stages (3,4,6,3) at 48/96/192/384 channels, 16x224x224."""
    return _build("sevnet_g6", dict(group_width=6), **kwargs)


@register_model("sevnet")
def sevnet_g8(**kwargs) -> SEVNet:
    """SEVNet-G8: group width 8, stages (3,4,6,3) at 64/128/256/512 channels, 16x224x224."""
    return _build("sevnet_g8", dict(group_width=8), **kwargs)


@register_model("sevnet")
def sevnet_g12(**kwargs) -> SEVNet:
    """SEVNet-G12: group width 12, stages (3,4,6,3) at 96/192/384/768 channels, 16x224x224."""
    return _build("sevnet_g12", dict(group_width=12), **kwargs)


@register_model("sevnet")
def sevnet_se_g6(**kwargs) -> SEVNet:
    """SEVNet-G6 with squeeze-excitation (r=4) on every module's residual branch."""
    return _build("sevnet_se_g6", dict(group_width=6, se=True), **kwargs)


@register_model("sevnet")
def sevnet_se_g8(**kwargs) -> SEVNet:
    """SEVNet-G8 with squeeze-excitation (r=4) on every module's residual branch."""
    return _build("sevnet_se_g8", dict(group_width=8, se=True), **kwargs)


@register_model("sevnet")
def sevnet_edge(**kwargs) -> SEVNet:
    """SEVNet edge: G4, depths (1,1,2,1), 8x96x96, 10 classes; BN+ReLU as the paper, sized for a Pynq-Z2."""
    base = dict(group_width=4, depths=(1, 1, 2, 1), frames=8, img_size=96, num_classes=10, drop_rate=0.2)
    return _build("sevnet_edge", base, **kwargs)
