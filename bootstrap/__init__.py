"""The composition root: builds every adapter once and hands each entrypoint what it uses.

``servers`` reaches (or starts) PostgreSQL and Redis; ``platform`` wires the adapters and the
command bus; ``models`` builds a process's models; ``tasks`` and ``background`` its supervised
work. Each entrypoint takes its own part: ``bootstrap.api``, ``bootstrap.worker`` and
``bootstrap.cli``. The names below are what other modules (and the tests) import from here.

They are imported on first use (PEP 562): ``from bootstrap import settings_or_exit`` reads the
settings without torch, SQLAlchemy or the app, which the API's supervisor never needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the same names, for type checkers and readers
    from bootstrap.models import build_inference, build_model_cache, build_shard_evaluator
    from bootstrap.platform import Platform, build_platform, wire
    from bootstrap.servers import (
        create_engine,
        create_redis,
        database_url,
        migrate,
        redis_url,
        stop_embedded_servers,
    )
    from bootstrap.tasks import build_relay, build_shard_backlog
    from settings import Settings, get_settings, settings_or_exit

_HOMES = {
    "bootstrap.models": ("build_inference", "build_model_cache", "build_shard_evaluator"),
    "bootstrap.platform": ("Platform", "build_platform", "wire"),
    "bootstrap.servers": (
        "create_engine",
        "create_redis",
        "database_url",
        "migrate",
        "redis_url",
        "stop_embedded_servers",
    ),
    "bootstrap.tasks": ("build_relay", "build_shard_backlog"),
    "settings": ("Settings", "get_settings", "settings_or_exit"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "Platform",
    "Settings",
    "build_inference",
    "build_model_cache",
    "build_platform",
    "build_relay",
    "build_shard_backlog",
    "build_shard_evaluator",
    "create_engine",
    "create_redis",
    "database_url",
    "get_settings",
    "migrate",
    "redis_url",
    "settings_or_exit",
    "stop_embedded_servers",
    "wire",
]


def __getattr__(name: str):
    """Import the module that defines ``name`` when it is first asked for."""
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'bootstrap' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
