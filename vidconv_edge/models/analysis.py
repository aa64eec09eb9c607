"""Parameter and multiply-accumulate counts, per clip and per stage (FLOPs / 2 from FlopCounterMode)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from vidconv_edge.models.base import VideoClassifier


@dataclass
class StageRow:
    name: str
    params: int
    macs: int
    output_shape: list[int]


@dataclass
class Profile:
    model: str
    params: int
    macs: int  # per clip
    input_shape: list[int]
    num_classes: int
    stages: list[StageRow] = field(default_factory=list)
    macs_per_streamed_frame: int | None = None  # VidConv: one early-net frame + one later-net collage

    def to_dict(self) -> dict:
        return asdict(self)


def _macs(fn, *args) -> tuple[int, dict[str, int]]:
    """Total MACs of ``fn(*args)`` and MACs per module path (FlopCounterMode counts FLOPs = 2 MACs)."""
    with FlopCounterMode(display=False, depth=None) as counter, torch.no_grad():
        fn(*args)
    per_module = {name: sum(ops.values()) // 2 for name, ops in counter.get_flop_counts().items()}
    return counter.get_total_flops() // 2, per_module


def profile_model(model: VideoClassifier) -> Profile:
    """Count params and MACs of one clip (batch 1), with one row per stage of ``model.stage_parts()``."""
    model = model.eval()
    spec = model.input_spec
    clip = torch.zeros(1, spec.frames, 3, spec.size, spec.size)
    parts = model.stage_parts()
    shapes: dict[str, list[int]] = {}
    handles = [
        model.get_submodule(paths[-1]).register_forward_hook(
            lambda mod, inp, out, name=name: shapes.__setitem__(name, list(out.shape))
        )
        for name, paths in parts.items()
    ]
    try:
        total, per_module = _macs(model, clip)
    finally:
        for h in handles:
            h.remove()
    prefix = type(model).__name__
    stages = [
        StageRow(
            name,
            sum(p.numel() for path in paths for p in model.get_submodule(path).parameters()),
            sum(per_module.get(f"{prefix}.{path}", 0) for path in paths),
            shapes.get(name, []),
        )
        for name, paths in parts.items()
    ]
    prof = Profile(model.name, sum(p.numel() for p in model.parameters()), total, list(clip.shape), model.num_classes, stages)
    if getattr(model, "supports_streaming", False):
        collage = model.collage(model.forward_early(clip[0]))
        early, _ = _macs(model.forward_early, clip[0, :1])
        later, _ = _macs(model.forward_later, collage)
        prof.macs_per_streamed_frame = early + later
    return prof


def profile_table(prof: Profile, title: str):
    """A rich table of a profile: one row per stage and a total."""
    from rich.table import Table

    table = Table(title=title)
    for col, justify in (("stage", "left"), ("params", "right"), ("MACs", "right"), ("output", "left")):
        table.add_column(col, justify=justify)
    for row in prof.stages:
        table.add_row(row.name, f"{row.params / 1e6:.3f}M", f"{row.macs / 1e9:.3f}G", str(tuple(row.output_shape)))
    table.add_row("total", f"{prof.params / 1e6:.3f}M", f"{prof.macs / 1e9:.3f}G", f"{prof.num_classes} classes")
    return table
