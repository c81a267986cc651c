"""Upcasters: turn an event stored under an older schema version into the current shape.

Stored bytes are never rewritten (the hash chain covers them); decoding dispatches on
(event type, schema version) and runs the upcasters from the stored version up to the
class's ``schema_version``, one step at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def register_upcaster(type_name: str, from_version: int, fn: Upcaster) -> None:
    """Make ``fn`` turn a ``type_name`` payload of ``from_version`` into ``from_version + 1``."""
    _UPCASTERS[(type_name, from_version)] = fn


def upcaster(type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorator form of ``register_upcaster``."""

    def wrap(fn: Upcaster) -> Upcaster:
        register_upcaster(type_name, from_version, fn)
        return fn

    return wrap


def upcast(type_name: str, version: int, target: int, data: dict[str, Any]) -> dict[str, Any]:
    """Apply the chain of upcasters from ``version`` to ``target``."""
    if version > target:
        raise ValueError(
            f"{type_name} schema version {version} is newer than this code knows ({target})"
        )
    while version < target:
        fn = _UPCASTERS.get((type_name, version))
        if fn is None:
            raise ValueError(f"no upcaster for {type_name} from schema version {version}")
        data = fn(dict(data))
        version += 1
    return data
