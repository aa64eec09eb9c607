"""Model registry: ``@register_model`` on a factory, ``create_model(name, **kwargs)`` to build."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from vidconv_edge.errors import UserError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    family: str
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(family: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a factory under its function name; the docstring's first line describes it."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[fn.__name__] = ModelEntry(fn.__name__, fn, family, doc[0] if doc else "")
        return fn

    return wrap


def list_models() -> list[ModelEntry]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise UserError(f"unknown model '{name}'. Known models: {known}")
    return _REGISTRY[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; keyword arguments override its configuration."""
    entry = get_entry(name)
    try:
        model = entry.factory(**kwargs)
    except TypeError as e:  # unknown keyword for this family
        raise UserError(f"model '{name}': {e}") from e
    return model
