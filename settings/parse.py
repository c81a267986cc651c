"""Reading one variable of the environment, and the field that records where it comes from."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A variable of the environment that cannot be read; the message names it."""


def setting(env: str, read: Callable[[], Any], default: str, doc: str, secret: bool = False) -> Any:
    """A field read from ``env`` when its group is built; its row of the table rides along."""
    meta = {"env": env, "default": default, "doc": doc}
    return field(default_factory=read, repr=not secret, metadata=meta)


def read_path(name: str, default: str) -> Path:
    """The variable as an absolute path (``~`` expanded), or ``default`` when unset or empty."""
    return Path(os.environ.get(name) or default).expanduser().resolve()


def read_int(name: str, default: int) -> int:
    """The variable as a whole number, or ``default`` when unset or empty."""
    raw = os.environ.get(name)
    try:
        return int(raw) if raw else default
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None


def read_float(name: str, default: float) -> float:
    """The variable as a number, or ``default`` when unset or empty."""
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from None


def read_bool(name: str, default: bool) -> bool:
    """1, true, yes or on (any case) is true; unset or empty is ``default``."""
    raw = os.environ.get(name)
    return default if raw is None or raw == "" else raw.lower() in {"1", "true", "yes", "on"}


def optional(name: str) -> str | None:
    """The variable, or None when unset or empty."""
    return os.environ.get(name) or None


def whole(env: str, default: int, doc: str, shown: str = "") -> Any:
    """An integer setting."""
    return setting(env, lambda: read_int(env, default), shown or str(default), doc)


def number(env: str, default: float, doc: str, shown: str = "") -> Any:
    """A float setting."""
    return setting(env, lambda: read_float(env, default), shown or f"{default:g}", doc)


def flag(env: str, default: bool, doc: str) -> Any:
    """A boolean setting."""
    return setting(env, lambda: read_bool(env, default), str(default).lower(), doc)


def text(env: str, doc: str, shown: str = "unset", secret: bool = False) -> Any:
    """An optional string setting: None when unset or empty."""
    return setting(env, lambda: optional(env), shown, doc, secret)


def choice(env: str, default: str, choices: tuple[str, ...], doc: str) -> Any:
    """A string setting that must be one of ``choices``."""

    def read() -> str:
        raw = os.environ.get(env) or default
        if raw not in choices:
            raise SettingsError(f"{env} must be one of {', '.join(choices)}, not {raw!r}")
        return raw

    return setting(env, read, f"`{default}`", doc)


ROLES = ("reader", "predictor", "operator", "admin")  # lowest first, as in events/keys.py


def read_api_keys(raw: str) -> dict[str, tuple[str, str]]:
    """Parse ``name:key:role,...`` into key -> (name, role); ``name:key`` means role operator."""
    keys: dict[str, tuple[str, str]] = {}
    for item in filter(None, (s.strip() for s in raw.split(","))):
        parts = item.split(":")
        if len(parts) == 2:
            parts.append("operator")  # the old format: a key could do every write there was
        name, key, role = parts if len(parts) == 3 else ("", "", "")
        if not name or len(key) < 16 or role not in ROLES:
            raise SettingsError(
                "API_KEYS must look like 'alice:<key of 16+ chars>:admin,bob:<key>:reader' "
                f"(roles: {', '.join(ROLES)}; no ':' or ',' inside a key)"
            )
        keys[key] = (name, role)
    return keys
