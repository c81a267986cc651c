"""Architecture registry: one module per architecture, each registering a builder by name.

Adding a model type means adding one file to this package that decorates a builder with
``@register_architecture("name")``; every module here is imported on first use.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from torch import nn

Builder = Callable[[int], nn.Module]

ARCHITECTURES: dict[str, Builder] = {}
_discovered = False


class UnknownArchitecture(ValueError):
    """The architecture name is not registered."""

    def __init__(self, name: object) -> None:
        known = ", ".join(list_architectures()) or "(none)"
        super().__init__(f"unknown architecture {name!r}; known architectures: {known}")
        self.name = name


def register_architecture(name: str) -> Callable[[Builder], Builder]:
    """Register ``builder(num_classes) -> nn.Module`` under ``name``."""

    def decorator(builder: Builder) -> Builder:
        existing = ARCHITECTURES.get(name)
        if existing is not None and existing is not builder:
            raise ValueError(f"architecture {name!r} is already registered by {existing!r}")
        ARCHITECTURES[name] = builder
        return builder

    return decorator


def _discover() -> None:
    # Import every sibling module once so their decorators run.
    global _discovered
    if _discovered:
        return
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    _discovered = True


def list_architectures() -> list[str]:
    """Return the registered architecture names, sorted."""
    _discover()
    return sorted(ARCHITECTURES)


def build_model(name: str, num_classes: int = 10) -> nn.Module:
    """Build a freshly initialised model of architecture ``name`` (no pretrained weights)."""
    _discover()
    builder = ARCHITECTURES.get(name) if isinstance(name, str) else None
    if builder is None:
        raise UnknownArchitecture(name)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return builder(num_classes)
