"""Where the platform keeps its state: files, PostgreSQL and Redis."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from settings.parse import flag, number, read_int, read_path, setting, text, whole


def _import_roots() -> tuple[Path, ...]:
    raw = os.environ.get("ARTIFACT_IMPORT_ROOTS") or os.getcwd()
    return tuple(Path(p).expanduser().resolve() for p in raw.split(":") if p)


@dataclass(frozen=True)
class FileSettings:
    """State, artifacts and datasets on disk."""

    state_dir: Path = setting(
        "STATE_DIR",
        lambda: read_path("STATE_DIR", ".platform"),
        "`.platform`",
        "Embedded servers (Unix sockets only) and caches.",
    )
    artifacts_dir: Path = setting(
        "ARTIFACTS_DIR",
        lambda: read_path("ARTIFACTS_DIR", "artifacts"),
        "`artifacts`",
        "The artifact store: `<root>/<model>/<version>/model.pt` + `metadata.json`.",
    )
    artifact_import_roots: tuple[Path, ...] = setting(
        "ARTIFACT_IMPORT_ROOTS",
        _import_roots,
        "the working directory",
        "Colon-separated folders a registration may copy an artifact from.",
    )
    max_artifact_bytes: int = whole(
        "MAX_ARTIFACT_BYTES", 512 << 20, "Largest artifact accepted at registration.", "512 MiB"
    )
    data_dir: Path | None = setting(
        "DATA_DIR",
        lambda: read_path("DATA_DIR", "") if os.environ.get("DATA_DIR") else None,
        "unset",
        "A folder of IDX dataset files, tried first.",
    )
    allow_download: bool = flag(
        "ALLOW_DOWNLOAD", False, "Let torchvision download datasets that are not installed."
    )

    @property
    def cache_dir(self) -> Path:
        """Decoded-dataset cache."""
        return self.state_dir / "cache"


@dataclass(frozen=True)
class DatabaseSettings:
    """PostgreSQL: the event log and the projections."""

    url: str | None = text(
        "DATABASE_URL",
        "PostgreSQL URL, e.g. `postgresql://postgres@127.0.0.1:5432/test`.",
        "unset: embedded under `STATE_DIR`",
    )
    migration_url: str | None = text(
        "MIGRATION_DATABASE_URL",
        "The schema owner, used only to migrate; `DATABASE_URL` is then the application's role, "
        "granted only `SELECT, INSERT` on `event_log` ([audit](docs/audit.md)).",
        "unset: `DATABASE_URL`'s role",
    )
    pool_size: int = whole(
        "DB_POOL_SIZE", 10, "Pooled connections per process (as many again on overflow)."
    )
    pool_timeout_s: float = number(
        "DB_POOL_TIMEOUT_S", 10.0, "A request that waits longer for a pooled connection gets 503."
    )
    statement_timeout_ms: int = whole(
        "DB_STATEMENT_TIMEOUT_MS",
        60_000,
        "The server ends a statement that runs longer (503); migrations lift it.",
    )
    lock_timeout_ms: int = whole(
        "DB_LOCK_TIMEOUT_MS", 10_000, "The server ends a lock wait longer than this (503)."
    )
    idle_in_transaction_timeout_ms: int = whole(
        "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
        60_000,
        "The server ends a session idle inside a transaction longer than this.",
    )
    keepalive_s: int = whole(
        "DB_KEEPALIVE_S", 30, "TCP keepalive idle time, so the server drops a vanished client."
    )
    registration_concurrency: int = setting(
        "REGISTRATION_CONCURRENCY",
        lambda: read_int("REGISTRATION_CONCURRENCY", max(1, read_int("DB_POOL_SIZE", 10) // 2)),
        "DB_POOL_SIZE / 2",
        "Registrations one process runs at once (each holds two connections); others wait.",
    )
    registration_wait_s: float = number(
        "REGISTRATION_WAIT_S",
        30.0,
        "How long a registration waits for its turn, or for another of the same version (503).",
    )


@dataclass(frozen=True)
class RedisSettings:
    """Redis Streams: the events' delivery."""

    url: str | None = text(
        "REDIS_URL",
        "Redis URL, e.g. `redis://127.0.0.1:6379/0`.",
        "unset: embedded under `STATE_DIR`",
    )
    relay_interval_s: float = number(
        "RELAY_INTERVAL_S",
        1.0,
        "The relay publishes when an append commits (`LISTEN`/`NOTIFY`) and passes at least this "
        "often, which notices a Redis that lost its data.",
    )
    stream_maxlen: int = whole(
        "STREAM_MAXLEN",
        100_000,
        "Approximate cap of the streams no group reads (fan-out, dead letters).",
    )
