"""The composition root: builds every adapter once and hands each entrypoint what it uses.

``bootstrap.servers`` reaches (or starts) PostgreSQL and Redis; ``bootstrap.platform`` wires the
adapters and the command bus; ``bootstrap.models`` builds a process's models;
``bootstrap.tasks`` the supervised background tasks.
"""

from __future__ import annotations

from bootstrap.models import (
    build_gate_latency,
    build_inference,
    build_model_cache,
    build_shard_evaluator,
)
from bootstrap.platform import Platform, SystemClock, build_platform, wire
from bootstrap.servers import (
    MIGRATION_LOCK,
    create_engine,
    create_redis,
    database_url,
    migrate,
    redis_url,
    stop_embedded_servers,
)
from bootstrap.tasks import (
    build_dead_letters,
    build_relay,
    build_retention,
    build_shard_backlog,
    build_stream_stats,
    build_worker_upkeep,
)
from settings import Settings, get_settings, settings_or_exit

__all__ = [
    "MIGRATION_LOCK",
    "Platform",
    "Settings",
    "SystemClock",
    "build_dead_letters",
    "build_gate_latency",
    "build_inference",
    "build_model_cache",
    "build_platform",
    "build_relay",
    "build_retention",
    "build_shard_backlog",
    "build_shard_evaluator",
    "build_stream_stats",
    "build_worker_upkeep",
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
