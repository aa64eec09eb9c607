"""Model registry: ``@register_model`` on a factory, ``create_model(name, **kwargs)`` to build."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

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
    """Build a registered model; keyword arguments override its configuration.

    Keywords the factory does not take, and option values of the wrong kind, are a UserError; any other
    error of the construction (a bug) propagates as it is.
    """
    entry = get_entry(name)
    try:
        inspect.signature(entry.factory).bind(**kwargs)
    except TypeError as e:  # a keyword this factory does not take
        raise UserError(f"model '{name}': {e}") from e
    return entry.factory(**kwargs)


def option_tuple(model: str, key: str, value: Any) -> tuple:
    """A sequence option (dims, depths, mean, std, ...) as a tuple; UserError for a value that is not a sequence."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise UserError(f"model '{model}': option {key} must be a list, e.g. {key}=[1,2], got {value!r}")
    return tuple(value)
