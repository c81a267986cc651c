"""The servers: PostgreSQL and Redis URLs (embedded ones started when unset), the engine, the
Redis client, and the schema migration."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from settings import Settings, get_settings
from storage import connections, embedded
from storage.connections import create_redis

MIGRATION_LOCK = 7_313_001
ROOT = Path(__file__).resolve().parents[1]

__all__ = [
    "create_engine",
    "create_redis",
    "database_url",
    "migrate",
    "redis_url",
    "stop_embedded_servers",
]


def database_url(settings: Settings | None = None) -> str:
    """DATABASE_URL normalised for asyncpg, or the embedded server's URL (started if needed)."""
    settings = settings or get_settings()
    url = settings.database.url
    if not url:
        return embedded.ensure_postgres(settings.files.state_dir)
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    return url


def stop_embedded_servers(settings: Settings) -> list[str]:
    """Stop the embedded servers under the state folder; the names of those stopped."""
    return embedded.stop_all(settings.files.state_dir)


def redis_url(settings: Settings | None = None) -> str:
    """REDIS_URL, or the embedded server's URL (started if needed)."""
    settings = settings or get_settings()
    return settings.redis.url or embedded.ensure_redis(settings.files.state_dir)


def create_engine(
    url: str, pool_size: int | None = None, settings: Settings | None = None
) -> AsyncEngine:
    """An asyncpg engine with the settings' pool and server-side timeouts (storage.connections)."""
    s = settings or get_settings()
    return connections.create_engine(
        url,
        pool_size=pool_size or s.database.pool_size,
        pool_timeout_s=s.database.pool_timeout_s,
        statement_timeout_ms=s.database.statement_timeout_ms,
        lock_timeout_ms=s.database.lock_timeout_ms,
        idle_in_transaction_timeout_ms=s.database.idle_in_transaction_timeout_ms,
        keepalive_s=s.database.keepalive_s,
    )


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade the schema to head; concurrent starters wait on an advisory lock."""
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))

    def _upgrade(sync_conn) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        # A migration may take long, and concurrent starters wait for it here.
        await conn.execute(text("SET LOCAL statement_timeout = 0"))
        await conn.execute(text("SET LOCAL lock_timeout = 0"))
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        await conn.run_sync(_upgrade)
