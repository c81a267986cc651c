"""An unknown field in a JSON body, answered with the fields accepted where it stood.

Request structs refuse unknown fields (``forbid_unknown_fields=True``); msgspec names the field
and its path (Litestar passes them on as ``Object contains unknown field `x` `` and a key such
as ``inputs[0]``). The accepted names are read from the body's type at that path, so every
body type gets the same answer without a line of its own.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi
from litestar import Request
from litestar.exceptions import ValidationException

T = TypeVar("T")
UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<field>[^`]*)`$")
_SEGMENT = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")


def _steps(key: str) -> list[str | int | None]:
    """``inputs[0].parameters`` -> ["inputs", 0, "parameters"]; ``[...]`` (a dict's value) -> None."""
    steps: list[str | int | None] = []
    for name, index in _SEGMENT.findall(key):
        if name:
            steps.append(name)
        else:
            steps.append(int(index) if index.isdigit() else None)
    return steps


def _structs(t: mi.Type, steps: list[str | int | None]) -> list[mi.StructType]:
    """The struct types reached from ``t`` along ``steps`` (several through a union)."""
    if isinstance(t, mi.Metadata):
        return _structs(t.type, steps)
    if isinstance(t, mi.UnionType):
        return [s for member in t.types for s in _structs(member, steps)]
    if not steps:
        return [t] if isinstance(t, mi.StructType) else []
    step, rest = steps[0], steps[1:]
    if isinstance(t, mi.StructType) and isinstance(step, str):
        return [s for f in t.fields if f.encode_name == step for s in _structs(f.type, rest)]
    if isinstance(t, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        return _structs(t.item_type, rest) if not isinstance(step, str) else []
    if isinstance(t, mi.TupleType) and isinstance(step, int) and step < len(t.item_types):
        return _structs(t.item_types[step], rest)
    if isinstance(t, mi.DictType):
        return _structs(t.value_type, rest)
    return []


def accepted_fields(
    body_type: Any, key: str, field: str, param: str = "data"
) -> tuple[str, list[str]] | None:
    """Where ``field`` was refused and the names accepted there (declaration order); None if
    the body type has no struct there. ``key`` is Litestar's: the parameter's name at the root."""
    try:
        root = mi.type_info(body_type)
    except (TypeError, ValueError):
        return None
    candidates = [("the request body", s) for s in _structs(root, [])] if key == param else []
    candidates += [(key, s) for s in _structs(root, _steps(key))]
    for where, struct in candidates:
        names = [f.encode_name for f in struct.fields]
        if field not in names:
            return where, names
    return None


def unknown_field_detail(body_type: Any, errors: Any, param: str = "data") -> str | None:
    """``unknown field 'x' in the request body; accepted fields: a, b`` for a validation
    error about an unknown field, else None."""
    if not isinstance(errors, list) or len(errors) != 1 or not isinstance(errors[0], dict):
        return None
    found = UNKNOWN_FIELD.match(str(errors[0].get("message", "")))
    if found is None or errors[0].get("source") != "body":
        return None
    located = accepted_fields(body_type, str(errors[0].get("key", "")), found["field"], param)
    if located is None:
        return None
    where, names = located
    return f"unknown field {found['field']!r} in {where}; accepted fields: {', '.join(names)}"


async def strict_body(request: Request, data: T | None, kind: type[T]) -> T | None:
    """An optional body decoded again without coercion, or 400 naming the field.

    Litestar converts a body typed ``X | None`` leniently: ``{"force": 0}`` would pass for false.
    """
    if data is None:
        return None
    try:
        return msgspec.json.decode(await request.body(), type=kind)
    except msgspec.ValidationError as exc:
        raise ValidationException(str(exc)) from exc
