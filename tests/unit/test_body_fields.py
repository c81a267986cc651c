"""The fields accepted where an unknown one stood, read from the body's type at its path."""

from __future__ import annotations

import msgspec

from api.body_fields import accepted_fields, unknown_field_detail


class Inner(msgspec.Struct, forbid_unknown_fields=True):
    a: int
    b_name: str = msgspec.field(default="", name="bName")


class Body(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    inner: Inner | None = None
    items: list[Inner] = []
    by_key: dict[str, Inner] = {}


def _refusal(body: dict) -> list[dict]:
    """Litestar's error entry for msgspec's refusal of ``body`` (its message, key, source)."""
    try:
        msgspec.convert(body, Body)
    except msgspec.ValidationError as exc:
        message, _, at = str(exc).partition(" - at `$")
        key = at.rstrip("`").lstrip(".") or "data"
        return [{"message": message, "key": key, "source": "body"}]
    raise AssertionError("accepted")


def test_the_fields_at_the_root_and_along_a_path() -> None:
    cases = [
        (
            {"name": "x", "nmae": 1},
            "unknown field 'nmae' in the request body; accepted fields: name, inner, items, by_key",
        ),
        (
            {"name": "x", "inner": {"a": 1, "b": 2}},
            "unknown field 'b' in inner; accepted fields: a, bName",
        ),
        (
            {"name": "x", "items": [{"a": 1}, {"a": 1, "c": 0}]},
            "unknown field 'c' in items[1]; accepted fields: a, bName",
        ),
        (
            {"name": "x", "by_key": {"k": {"a": 1, "d": 0}}},
            "unknown field 'd' in by_key[...]; accepted fields: a, bName",
        ),
    ]
    for body, expected in cases:
        assert unknown_field_detail(Body, _refusal(body)) == expected


def test_other_validation_errors_keep_their_own_detail() -> None:
    assert unknown_field_detail(Body, _refusal({"name": 3})) is None
    assert unknown_field_detail(Body, [{"message": "x", "key": "data", "source": "query"}]) is None
    assert unknown_field_detail(Body, "not a list") is None
    assert accepted_fields(int, "data", "x") is None
