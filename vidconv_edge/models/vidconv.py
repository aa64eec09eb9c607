"""VidConv (ViC): a ConvNeXt whose early-net runs per frame and whose later-net runs on a collage.

Paper: "VidConv" (../shared/seeds/vidconv-paper.txt). Structure and parameter names follow timm's
ConvNeXt (``stem``, ``stages.i.downsample``, ``stages.i.blocks.j.{conv_dw,norm,mlp.fc1,mlp.fc2,gamma}``,
``head.norm``, ``head.fc``) so ImageNet ConvNeXt weights load by name (see ``pretrained.py``).

- early-net: stem + stages[:stack_stage], run on every frame -> L maps of (C, H/s, W/s).
- collage: the L maps laid out row-major on an h x w grid -> one (C, h*H/s, w*W/s) map.
- later-net: stages[stack_stage:] of VidConv blocks on the collage, optional neck, head.

VidConv block: ConvNeXt block whose depthwise 7x7 output S becomes ``S + alpha * tile(T)``, with
T a depthwise conv of kernel (h, w) and dilation = tile size, no padding, on the block input.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidconv_edge.errors import UserError
from vidconv_edge.models.base import InputSpec, VideoClassifier
from vidconv_edge.models.layers import DropPath, frames_to_collage, make_act, make_norm
from vidconv_edge.models.registry import option_tuple, register_model


@dataclass
class VidConvConfig:
    """Everything that defines a VidConv network (stored in checkpoints and ONNX metadata)."""

    dims: tuple[int, ...] = (96, 192, 384, 768)
    depths: tuple[int, ...] = (3, 3, 9, 3)
    layout: tuple[int, int] = (3, 3)  # (h, w): frames = h * w
    stack_stage: int = 2  # frames are stacked into the collage after this stage (1..4)
    block: str = "vidconv"  # "vidconv" or "convnext" (no temporal branch, paper Table 6/7)
    neck_dim: int = 2304  # 0: no neck
    num_classes: int = 400
    img_size: int = 224
    norm: str = "ln"  # "ln" (paper) or "bn" (edge)
    act: str = "gelu"  # "gelu" (paper) or "relu" (edge)
    mlp_ratio: int = 4
    ls_init: float | None = 1e-6  # ConvNeXt layer scale; None: no layer scale
    alpha_init: float = 1e-2
    drop_path_rate: float = 0.0
    drop_rate: float = 0.0  # dropout before the classifier
    tile_mode: str = "concat"  # how tile(T) is computed: "concat" or "conv" (padded all-ones dilated conv)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @property
    def frames(self) -> int:
        return self.layout[0] * self.layout[1]

    def validate(self) -> None:
        h, w = self.layout
        if not (1 <= h <= 4 and 1 <= w <= 4):
            raise UserError(f"frames layout {h}x{w} not supported: h and w must be in 1..4")
        if not 1 <= self.stack_stage <= 4:
            raise UserError(f"stack_stage must be 1..4, got {self.stack_stage}")
        if self.img_size % 32 or self.img_size < 32:
            raise UserError(f"input size {self.img_size} not allowed: it must be a positive multiple of 32")
        if self.block not in ("vidconv", "convnext"):
            raise UserError(f"block must be 'vidconv' or 'convnext', got '{self.block}'")
        if self.tile_mode not in ("concat", "conv"):
            raise UserError(f"tile_mode must be 'concat' or 'conv', got '{self.tile_mode}'")
        if len(self.dims) != 4 or len(self.depths) != 4:
            raise UserError("dims and depths need 4 entries (one per stage)")


class TileToCollage(nn.Module):
    """Repeat a (B, C, tH, tW) map h times down and w times across, as plain 2D ops.

    ``concat``: Concat of copies. ``conv``: zero-pad by (h-1)*tile, then an all-ones depthwise
    (h, w) conv dilated by the tile size: the exact tiling as one convolution (FINN has no Tile op).
    """

    def __init__(self, channels: int, layout: tuple[int, int], tile: tuple[int, int], mode: str = "concat"):
        super().__init__()
        self.layout, self.tile, self.mode, self.channels = layout, tile, mode, channels
        self.register_buffer("ones", torch.ones(channels, 1, *layout), persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        h, w = self.layout
        th, tw = self.tile
        if self.mode == "concat":
            return torch.cat([torch.cat([t] * w, dim=3)] * h, dim=2)
        t = F.pad(t, ((w - 1) * tw, (w - 1) * tw, (h - 1) * th, (h - 1) * th))
        return F.conv2d(t, self.ones, dilation=(th, tw), groups=self.channels)


class TemporalBranch(nn.Module):
    """``alpha * tile(T(x))``: depthwise (h, w) conv dilated by the tile size, shared by all tiles."""

    def __init__(self, dim: int, layout: tuple[int, int], tile: tuple[int, int], alpha_init: float, tile_mode: str):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel_size=layout, dilation=tile, groups=dim)
        self.alpha = nn.Parameter(torch.full((dim,), alpha_init))
        self.tile = TileToCollage(dim, layout, tile, tile_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.conv(x) * self.alpha.view(1, -1, 1, 1)
        return self.tile(t)


class Mlp(nn.Module):
    """Pointwise MLP as 1x1 convolutions (names ``fc1``/``fc2`` as in timm)."""

    def __init__(self, dim: int, hidden: int, act: str):
        super().__init__()
        self.fc1 = self.make_fc(dim, hidden)
        self.act = self.make_act(act)
        self.fc2 = self.make_fc(hidden, dim)

    def make_fc(self, cin: int, cout: int) -> nn.Module:
        return nn.Conv2d(cin, cout, 1)

    def make_act(self, kind: str) -> nn.Module:
        return make_act(kind)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class VidConvBlock(nn.Module):
    """ConvNeXt block; with ``temporal`` set, the VidConv block of the paper (Fig. 3a)."""

    def __init__(self, dim: int, cfg: VidConvConfig, drop_path: float, temporal: TemporalBranch | None):
        super().__init__()
        self.conv_dw = self.make_conv(dim, dim, 7, padding=3, groups=dim)
        self.temporal = temporal
        self.norm = self.make_norm(cfg.norm, dim)
        self.mlp = self.make_mlp(dim, cfg.mlp_ratio * dim, cfg.act)
        self.gamma = nn.Parameter(torch.full((dim,), cfg.ls_init)) if cfg.ls_init is not None else None
        self.drop_path = DropPath(drop_path)

    def make_conv(self, cin: int, cout: int, kernel: int, **kwargs) -> nn.Module:
        return nn.Conv2d(cin, cout, kernel, **kwargs)

    def make_norm(self, kind: str, dim: int) -> nn.Module:
        return make_norm(kind, dim)

    def make_mlp(self, dim: int, hidden: int, act: str) -> nn.Module:
        return Mlp(dim, hidden, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_dw(x)
        if self.temporal is not None:
            y = y + self.temporal(x)
        y = self.mlp(self.norm(y))
        if self.gamma is not None:
            y = y * self.gamma.view(1, -1, 1, 1)
        return x + self.drop_path(y)


class Stage(nn.Module):
    """Downsample (norm + 2x2 stride-2 conv; identity in stage 1, after the stem) and blocks."""

    def __init__(self, downsample: nn.Module, blocks: list[nn.Module]):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class Neck(nn.Module):
    """Dense conv of kernel (h, w) dilated by one stage-4 tile, no padding: mixes all frames per pixel."""

    def __init__(self, in_dim: int, out_dim: int, layout: tuple[int, int], tile: tuple[int, int]):
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, kernel_size=layout, dilation=tile)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Head(nn.Module):
    """Global average pool, (norm), dropout, classifier. Without a neck: timm's ConvNeXt head."""

    def __init__(self, dim: int, num_classes: int, norm: nn.Module | None, drop_rate: float):
        super().__init__()
        self.norm = norm
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 1)
        if self.norm is not None:
            x = self.norm(x)
        return self.fc(self.drop(x.flatten(1)))


class VidConv(VideoClassifier):
    """VidConv network. ``forward(clip)`` = ``forward_later(collage(forward_early(frames)))``."""

    supports_streaming = True

    def __init__(self, cfg: VidConvConfig, name: str = "vidconv"):
        super().__init__()
        cfg.validate()
        self.cfg, self.name = cfg, name
        self.num_classes = cfg.num_classes
        self.layout = tuple(cfg.layout)
        self.input_spec = InputSpec(cfg.frames, cfg.img_size, tuple(cfg.mean), tuple(cfg.std), self.layout)
        rates = iter(torch.linspace(0, cfg.drop_path_rate, sum(cfg.depths)).tolist())
        self.stem = self.make_stem()
        self.stages = nn.ModuleList(
            Stage(
                nn.Identity() if i == 0 else self.make_downsample(i),
                [self.make_block(i, next(rates)) for _ in range(depth)],
            )
            for i, depth in enumerate(cfg.depths)
        )
        if cfg.neck_dim:
            self.final_norm = make_norm(cfg.norm, cfg.dims[-1])
            self.neck = Neck(cfg.dims[-1], cfg.neck_dim, self.layout, self.tile(3))
        else:
            self.final_norm = None
            self.neck = None
        self.head = self.make_head()
        self.apply(self._init_weights)

    def tile(self, stage: int) -> tuple[int, int]:
        """Size of one frame's map in stage ``stage`` (0..3): the dilation of its temporal convs."""
        return (self.cfg.img_size // (4 * 2**stage),) * 2

    def has_temporal(self, stage: int) -> bool:
        """Whether the blocks of ``stage`` (0..3) have a temporal branch (they run on the collage)."""
        return stage >= self.cfg.stack_stage and self.cfg.block == "vidconv"

    # -- layer factories (a quantized subclass overrides them) -------------------------------------
    def make_stem(self) -> nn.Module:
        """4x4 stride-4 conv + norm."""
        dim = self.cfg.dims[0]
        return nn.Sequential(nn.Conv2d(3, dim, 4, stride=4), make_norm(self.cfg.norm, dim))

    def make_downsample(self, stage: int) -> nn.Module:
        """Norm + 2x2 stride-2 conv into ``stage`` (1..3)."""
        cin, cout = self.cfg.dims[stage - 1], self.cfg.dims[stage]
        return nn.Sequential(make_norm(self.cfg.norm, cin), nn.Conv2d(cin, cout, 2, stride=2))

    def make_block(self, stage: int, drop_path: float) -> nn.Module:
        cfg, dim = self.cfg, self.cfg.dims[stage]
        temporal = None
        if self.has_temporal(stage):
            temporal = TemporalBranch(dim, self.layout, self.tile(stage), cfg.alpha_init, cfg.tile_mode)
        return VidConvBlock(dim, cfg, drop_path, temporal)

    def make_head(self) -> nn.Module:
        cfg = self.cfg
        if cfg.neck_dim:
            return Head(cfg.neck_dim, cfg.num_classes, None, cfg.drop_rate)
        return Head(cfg.dims[-1], cfg.num_classes, make_norm(cfg.norm, cfg.dims[-1]), cfg.drop_rate)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    # -- the split used by streaming and the two-partition export ---------------------------------
    def forward_early(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) frames -> (N, C, H/s, W/s) per-frame features."""
        x = self.stem(frames)
        for stage in list(self.stages)[: self.cfg.stack_stage]:  # list: slicing a ModuleList builds a new one
            x = stage(x)
        return x

    def collage(self, feats: torch.Tensor) -> torch.Tensor:
        """(B*L, C, h', w') early features, time-ordered per clip -> (B, C, h*h', w*w') collage."""
        return frames_to_collage(feats, self.layout)

    def forward_later(self, collage: torch.Tensor) -> torch.Tensor:
        """(B, C, h*h', w*w') collage -> (B, num_classes) logits."""
        x = collage
        for stage in list(self.stages)[self.cfg.stack_stage :]:
            x = stage(x)
        if self.neck is not None:
            x = self.neck(self.final_norm(x))
        return self.head(x)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        self.check_clip(clip)
        b, t = clip.shape[:2]
        feats = self.forward_early(clip.reshape(b * t, *clip.shape[2:]))
        return self.forward_later(self.collage(feats))

    def early_shape(self) -> tuple[int, int, int]:
        """(C, h', w') of one frame's early-net feature map."""
        s = self.cfg.stack_stage
        return (self.cfg.dims[s - 1], *self.tile(s - 1))

    def stage_parts(self) -> dict[str, list[str]]:
        parts: dict[str, list[str]] = {}
        for i in range(4):
            where = "early" if i < self.cfg.stack_stage else "later"
            parts[f"stage{i + 1} ({where})"] = (["stem"] if i == 0 else []) + [f"stages.{i}"]
        if self.neck is not None:
            parts["neck"] = ["final_norm", "neck"]
        parts["head"] = ["head"]
        return parts

    def config_dict(self) -> dict:
        return asdict(self.cfg)


def _layout_from(frames: int | None, layout: tuple[int, int] | None, default: tuple[int, int]) -> tuple[int, int]:
    from vidconv_edge.models.layers import layout_for_frames

    if layout is not None:
        layout = tuple(layout)
        if frames is not None and layout[0] * layout[1] != frames:
            raise UserError(f"frames {frames} do not fill the layout {layout[0]}x{layout[1]}")
        return layout
    if frames is None:
        return default
    h, w = layout_for_frames(frames)
    if frames < 1 or h * w != frames or h > 4 or w > 4:
        raise UserError(f"{frames} frames cannot be laid out as an h x w grid with h, w in 1..4")
    return (h, w)


def _build(name: str, base: dict, frames: int | None = None, layout: tuple[int, int] | None = None, **kwargs) -> VidConv:
    params = {**base, **kwargs}
    params["layout"] = _layout_from(frames, layout, tuple(params.get("layout", (3, 3))))
    known = set(VidConvConfig.__dataclass_fields__)
    unknown = set(params) - known
    if unknown:
        raise UserError(f"model '{name}': unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
    for key in ("dims", "depths", "mean", "std"):
        if key in params:
            params[key] = option_tuple(name, key, params[key])
    return VidConv(VidConvConfig(**params), name=name)


@register_model("vidconv")
def vic_tiny(**kwargs) -> VidConv:
    """ViC-T: ConvNeXt-T dims (96,192,384,768) depths (3,3,9,3), 3x3 collage after stage 2, neck 2304."""
    return _build("vic_tiny", dict(dims=(96, 192, 384, 768), depths=(3, 3, 9, 3), drop_path_rate=0.25), **kwargs)


@register_model("vidconv")
def vic_small(**kwargs) -> VidConv:
    """ViC-S: ConvNeXt-S dims (96,192,384,768) depths (3,3,27,3), 3x3 collage after stage 2, neck 2304."""
    return _build("vic_small", dict(dims=(96, 192, 384, 768), depths=(3, 3, 27, 3), drop_path_rate=0.4), **kwargs)


@register_model("vidconv")
def vic_base(**kwargs) -> VidConv:
    """ViC-B: ConvNeXt-B dims (128,256,512,1024) depths (3,3,27,3), neck 2048 (the paper's 107.4M count)."""
    return _build(
        "vic_base", dict(dims=(128, 256, 512, 1024), depths=(3, 3, 27, 3), neck_dim=2048, drop_path_rate=0.5), **kwargs
    )


@register_model("vidconv")
def vic_edge(**kwargs) -> VidConv:
    """ViC edge: BN+ReLU, dims (16,32,64,128) depths (1,1,2,1), 9x96x96, no neck; fits a Pynq-Z2 at W8A4."""
    base = dict(
        dims=(16, 32, 64, 128),
        depths=(1, 1, 2, 1),
        neck_dim=0,
        num_classes=10,
        img_size=96,
        norm="bn",
        act="relu",
        ls_init=None,
    )
    return _build("vic_edge", base, **kwargs)
