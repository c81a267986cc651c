"""The composition root: builds engines, clients, repositories and handlers for each entrypoint."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from settings import Settings, get_settings
from storage import embedded
from storage.artifacts import LocalArtifactStore
from storage.registry_queries import RegistryQueries
from storage.registry_repository import PostgresModelRepository

MIGRATION_LOCK = 7_313_001


def database_url(settings: Settings | None = None) -> str:
    """DATABASE_URL normalised for asyncpg, or the embedded server's URL."""
    settings = settings or get_settings()
    return _database_url(settings.database_url, settings.state_dir)


@cache
def _database_url(url: str | None, state_dir: Path) -> str:
    if not url:
        return embedded.ensure_postgres(state_dir)
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    return url


def redis_url(settings: Settings | None = None) -> str:
    """REDIS_URL, or the embedded server's URL."""
    settings = settings or get_settings()
    return settings.redis_url or embedded.ensure_redis(settings.state_dir)


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """An asyncpg engine with a bounded pool and a connect timeout."""
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, connect_args={"timeout": 10}
    )


def create_redis(url: str) -> aioredis.Redis:
    """A redis.asyncio client; the socket timeout stays above any blocking read we issue."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    # A restarted server leaves dead pooled sockets: retry once on a fresh connection.
    return aioredis.Redis.from_url(
        url,
        socket_timeout=30,
        socket_connect_timeout=5,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
        retry_on_error=[RedisConnectionError],
    )


def _alembic_config():
    from alembic.config import Config

    return Config(str(Path(__file__).parent / "alembic.ini"))


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade the schema to head; concurrent starters wait on an advisory lock."""
    from alembic import command

    cfg = _alembic_config()

    def _upgrade(sync_conn) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        await conn.run_sync(_upgrade)


@dataclass
class Platform:
    """Everything an entrypoint needs, built once."""

    settings: Settings
    engine: AsyncEngine
    redis: aioredis.Redis
    repo: PostgresModelRepository
    queries: RegistryQueries
    artifacts: LocalArtifactStore

    @property
    def jobs(self):
        """The batch-job store (commands)."""
        from storage.jobs_repository import PostgresJobStore

        return PostgresJobStore(self.engine)

    @property
    def job_queries(self):
        """Batch-job lookups."""
        from storage.jobs_queries import JobQueries

        return JobQueries(self.engine)

    @property
    def datasets(self):
        """The dataset catalog (ids and sizes, no pixels loaded)."""
        from ml.catalog import DatasetCatalog

        return DatasetCatalog(
            self.settings.data_dir, self.settings.cache_dir, self.settings.allow_download
        )

    @property
    def inspector(self):
        """The torch artifact inspector (imported lazily: torch is slow to import)."""
        from ml.inspector import TorchArtifactInspector

        return TorchArtifactInspector()

    async def aclose(self) -> None:
        """Release connections."""
        await self.redis.aclose()
        await self.engine.dispose()


def build_inference(platform: Platform):
    """The inference service (model cache, batchers, prod map) for an API process."""
    from ml.inference import InferenceService
    from ml.serving import BatchingConfig, ModelCache, VersionRef
    from observability.metrics import instruments

    s = platform.settings
    inst = instruments()

    def on_batch(stats) -> None:
        inst.batch_size.record(stats.size)
        for wait in stats.queue_wait_s:
            inst.queue_wait.record(wait)

    cache = ModelCache(
        platform.artifacts.path_for,
        max_models=s.model_cache_size,
        batching=BatchingConfig(s.max_batch, s.max_queue_delay_ms / 1000.0, s.max_queue),
        torch_threads=s.torch_threads,
        batch_threads=s.torch_batch_threads,
        on_batch=on_batch,
    )
    inst.gauge(
        "models_loaded",
        "Model versions loaded in this process",
        lambda: [(len(cache.loaded), {})],
    )

    async def lookup_version(name: str, version: str) -> VersionRef:
        v = await platform.queries.get_version(name, version)
        return VersionRef(name, version, v.sha256, v.artifact_uri, v.metadata)

    return InferenceService(cache, lookup_version, platform.queries.require_prod)


async def build_platform(
    settings: Settings | None = None, *, run_migrations: bool = True
) -> Platform:
    """Start or connect to the servers, migrate, and wire the adapters."""
    settings = settings or get_settings()
    engine = create_engine(database_url(settings))
    if run_migrations:
        await migrate(engine)
    return Platform(
        settings=settings,
        engine=engine,
        redis=create_redis(redis_url(settings)),
        repo=PostgresModelRepository(engine),
        queries=RegistryQueries(engine),
        artifacts=LocalArtifactStore(
            settings.artifacts_dir, settings.artifact_import_roots, settings.max_artifact_bytes
        ),
    )
