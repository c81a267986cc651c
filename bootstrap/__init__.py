"""The composition root: builds every adapter once and hands each entrypoint what it uses.

``servers`` reaches (or starts) PostgreSQL and Redis; ``platform`` wires the adapters and the
command bus; ``models`` builds a process's models; ``tasks`` and ``background`` its supervised
work. Each entrypoint takes its own part: ``bootstrap.api``, ``bootstrap.worker`` and
``bootstrap.cli``. The names below are what other modules (and the tests) import from here.
"""

from __future__ import annotations

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
