"""Training recipes: YAML files validated into dataclasses (unknown keys and wrong types -> UserError).

A recipe has four sections, every key optional (defaults: the dataclasses below), e.g.::

    model:  {drop_path_rate: 0.25, drop_rate: 0.0}            # keyword overrides for create_model
    data:   {sampling: vidconv, stride_range: [8, 12], ...}   # clip sampling and augmentation
    optim:  {name: adamw, lr: 1.0e-3, min_lr: 5.0e-6, backbone_lr_factor: 0.25, ...}
    train:  {epochs: 24, batch_size: 64, step_batch_size: 8, early_stopping: null, ...}
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vidconv_edge.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


@dataclass
class DataConfig:
    """Clip sampling and augmentation: the options of ``vidconv_edge.data.build_datasets``."""

    sampling: str = "vidconv"  # "vidconv": L frames at a random stride; "tsn": one frame per segment
    stride_range: tuple[int, int] = (8, 12)  # training stride range (vidconv sampling)
    test_stride: float | None = None  # stride of evaluation clips; None: the middle of stride_range
    val_views: tuple[int, int] = (1, 1)  # clips x crops per validation video
    val_fraction: float = 0.2  # held out (stratified) when the data has no validation list
    flip: bool = True
    flip_map: str | None = "auto"  # "auto": a flip swaps classes named left<->right, cw<->ccw; null: never
    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)  # multi-scale crop, fractions of the short side
    short_side: int | None = None  # frames resized to this short side first (default size * 8 / 7)
    resize_at_decode: bool = False  # decode large frames straight to short_side (faster; slightly other pixels)
    random_crop: bool = False
    randaugment: tuple[int, float] | None = None  # (num_ops, magnitude), e.g. [2, 9]; null: off
    frame_rate: float | None = None  # of the training videos (recorded by training): eval and stream pace other rates to it


@dataclass
class OptimConfig:
    """Optimizer and per-iteration learning-rate schedule (linear warm-up, then cosine)."""

    name: str = "adamw"  # "adamw" or "sgd"
    lr: float = 1e-3
    min_lr: float = 5e-6
    weight_decay: float = 0.05
    momentum: float = 0.9  # sgd only
    betas: tuple[float, float] = (0.9, 0.999)  # adamw only
    backbone_lr_factor: float = 1.0  # l_b: lr factor of everything but new temporal branches, neck, head
    lr_scaling: str = "none"  # "none"; "world_size": lr x processes; "batch": lr x effective batch / lr_base_batch
    lr_base_batch: int = 8  # the batch the lr is given for ("batch" scaling; SEVNet: 0.01 per GPU of 8 clips)
    warmup_epochs: float = 1.0
    clip_grad_norm: float | None = None


@dataclass
class TrainConfig:
    """Length, batch and run options."""

    epochs: int = 24
    batch_size: int = 64  # effective batch over all processes (gradient accumulation fills it)
    step_batch_size: int = 8  # per process and step (memory bound)
    workers: int = 2
    seed: int = 0
    early_stopping: int | None = None  # patience in epochs without a better val top-1
    label_smoothing: float = 0.0
    multilabel: bool = False  # sigmoid + BCE, mAP (MMIT)
    amp: bool = True  # CUDA only
    channels_last: bool = True  # CUDA only


@dataclass
class Recipe:
    name: str = "default"
    description: str = ""
    model: dict = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        checks = [
            (self.data.sampling in ("vidconv", "tsn"), f"data.sampling must be 'vidconv' or 'tsn', got '{self.data.sampling}'"),
            (1 <= self.data.stride_range[0] <= self.data.stride_range[1], f"data.stride_range must be [lo, hi] with 1 <= lo <= hi, got {list(self.data.stride_range)}"),
            (min(self.data.val_views) >= 1, "data.val_views must be [clips, crops] >= 1"),
            (self.data.val_views[1] in (1, 3), f"data.val_views crops must be 1 or 3, got {self.data.val_views[1]}"),
            (0 < self.data.val_fraction < 1, "data.val_fraction must be between 0 and 1"),
            (self.data.flip_map in (None, "auto"), f"data.flip_map must be 'auto' or null, got '{self.data.flip_map}'"),
            (self.optim.name in ("adamw", "sgd"), f"optim.name must be 'adamw' or 'sgd', got '{self.optim.name}'"),
            (self.optim.lr > 0 and self.optim.min_lr >= 0, "optim.lr must be > 0 and optim.min_lr >= 0"),
            (self.optim.lr_scaling in ("none", "world_size", "batch"), f"optim.lr_scaling must be 'none', 'world_size' or 'batch', got '{self.optim.lr_scaling}'"),
            (self.optim.lr_base_batch >= 1, "optim.lr_base_batch must be >= 1"),
            (self.optim.warmup_epochs >= 0, "optim.warmup_epochs must be >= 0"),
            (self.train.epochs >= 1, "train.epochs must be >= 1"),
            (self.train.batch_size >= 1 and self.train.step_batch_size >= 1, "train.batch_size and train.step_batch_size must be >= 1"),
            (self.train.workers >= 0, "train.workers must be >= 0"),
            (self.train.early_stopping is None or self.train.early_stopping >= 1, "train.early_stopping must be null or >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"recipe '{self.name}': {message}")


def _check_type(value, tp, where: str):
    """Return ``value`` converted to the annotation ``tp`` (lists -> tuples, ints -> floats) or raise."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, where)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0])
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check_type(v, args[0], where) for v in value)
        if len(value) != len(args):
            raise UserError(f"{where}: expected a list of {len(args)} values, got {list(value)}")
        return tuple(_check_type(v, a, where) for v, a in zip(value, args))
    if tp is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp}")


def _build(cls, data: dict, where: str):
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        prefix = f"{where}." if where else ""
        raise UserError(f"unknown recipe key '{prefix}{unknown[0]}' (known: {', '.join(names)})")
    kwargs = {}
    for key, value in data.items():
        sub = f"{where}.{key}" if where else key
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value or {}, sub)
        else:
            kwargs[key] = _check_type(value, tp, f"recipe key '{sub}'")
    return cls(**kwargs)


def recipe_from_dict(data: dict, name: str = "default") -> Recipe:
    """Validate a recipe mapping (as read from YAML) into a :class:`Recipe`."""
    if not isinstance(data, dict):
        raise UserError(f"a recipe must be a mapping of sections, got {type(data).__name__}")
    recipe = _build(Recipe, {"name": name, **data}, "")
    recipe.validate()
    return recipe


def resolve_config_path(spec: str | os.PathLike) -> Path:
    """A recipe file path, or the bare name of a shipped recipe (``vic_tiny_k400``)."""
    path = Path(spec)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / f"{path.stem}.yaml"
    if path.suffix in ("", ".yaml", ".yml") and path.parent == Path(".") and shipped.is_file():
        return shipped
    known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")) if CONFIG_DIR.is_dir() else []
    hint = f" (shipped recipes: {', '.join(known)})" if known else ""
    raise UserError(f"config not found: {spec}{hint}")


def load_recipe(spec: str | os.PathLike | None = None) -> Recipe:
    """Load and validate a YAML recipe (path or shipped name); ``None`` gives the default recipe."""
    if spec is None:
        return recipe_from_dict({})
    path = resolve_config_path(spec)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML: {e}") from e
    try:
        return recipe_from_dict(data or {}, name=path.stem)
    except UserError as e:
        raise UserError(f"{path}: {e}") from e
