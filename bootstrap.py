"""The composition root: builds every adapter once and hands entrypoints the ports they use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.ports import UnitOfWorkFactory
from ml.catalog import DatasetCatalog
from ml.inspector import TorchArtifactInspector
from settings import Settings, get_settings
from storage import connections, embedded
from storage.audit.service import AuditService
from storage.connections import create_redis
from storage.console.queries import ConsoleQueries
from storage.gates.queries import GateQueries
from storage.jobs.queries import JobQueries
from storage.jobs.shard_queue import RedisShardQueue
from storage.keys.queries import KeyQueries
from storage.operations import PlatformOperations
from storage.registry.artifacts import LocalArtifactStore
from storage.registry.queries import RegistryQueries
from storage.registry.repository import PostgresRegistrationLock
from storage.unit_of_work import unit_of_work_factory

MIGRATION_LOCK = 7_313_001


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

    cfg = Config(str(Path(__file__).parent / "alembic.ini"))

    def _upgrade(sync_conn) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        # A migration may take long, and concurrent starters wait for it here.
        await conn.execute(text("SET LOCAL statement_timeout = 0"))
        await conn.execute(text("SET LOCAL lock_timeout = 0"))
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        await conn.run_sync(_upgrade)


class SystemClock:
    """Implements domain.ports.Clock with the wall clock."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Platform:
    """Every adapter, built once; entrypoints take the narrow fields they need."""

    settings: Settings
    engine: AsyncEngine
    redis: aioredis.Redis
    uow: UnitOfWorkFactory
    registration_lock: PostgresRegistrationLock
    artifacts: LocalArtifactStore
    inspector: TorchArtifactInspector
    datasets: DatasetCatalog
    queries: RegistryQueries
    job_queries: JobQueries
    gate_queries: GateQueries
    keys: KeyQueries
    shard_queue: RedisShardQueue
    clock: SystemClock
    ops: PlatformOperations
    audit: AuditService
    console: ConsoleQueries

    async def aclose(self) -> None:
        """Release connections."""
        await self.redis.aclose()
        await self.engine.dispose()


def build_model_cache(platform: Platform, *, serving: bool):
    """A model cache for this process: batching and its metrics for serving, plain for workers."""
    from ml.serving import BatchingConfig, ModelCache
    from observability.metrics import instruments

    s, inst = platform.settings, instruments()
    common = dict(
        max_models=s.serving.model_cache_size,
        torch_threads=s.serving.torch_threads,
        device=s.serving.device,
        on_cache=inst.record_cache,
    )
    if not serving:  # workers evaluate on the model as trained (ml.graph)
        return ModelCache(platform.artifacts.path_for, **common)
    cache = ModelCache(
        platform.artifacts.path_for,
        batching=BatchingConfig(
            s.serving.max_batch, s.serving.max_queue_delay_ms / 1000.0, s.serving.max_queue
        ),
        batch_threads=s.serving.torch_batch_threads,
        idle_threads=s.serving.torch_idle_threads,
        on_batch=inst.record_batch,
        graph=s.serving.inference_graph,
        **common,
    )
    inst.gauge(
        "models_loaded",
        "Model versions loaded in this process",
        lambda: [(len(cache.loaded), {})],
    )
    return cache


def build_inference(platform: Platform):
    """The inference service (model cache, batchers, prod map) for an API process."""
    from ml.inference import InferenceService
    from ml.serving import VersionRef

    cache = build_model_cache(platform, serving=True)

    async def lookup_version(name: str, version: str) -> VersionRef:
        v = await platform.queries.get_version(name, version)
        return VersionRef(name, version, v.sha256, v.artifact_uri, v.metadata)

    return InferenceService(cache, lookup_version, platform.queries.require_prod)


def build_shard_evaluator(platform: Platform):
    """The worker's shard evaluator over its own model cache."""
    from ml.shard_evaluator import TorchShardEvaluator

    s = platform.settings
    return TorchShardEvaluator(
        build_model_cache(platform, serving=False),
        s.files.data_dir,
        s.files.cache_dir,
        s.files.allow_download,
    )


def build_gate_latency(platform: Platform, evaluator):
    """The paired latency meter of gates, on a worker's shard evaluator (its cache and datasets)."""
    from ml.gate_latency import DEFAULT_BATCH, TorchPairedLatency

    rounds = platform.settings.gates.latency_rounds
    return TorchPairedLatency(evaluator, rounds=rounds, batch_size=DEFAULT_BATCH)


def build_shard_backlog(platform: Platform):
    """What the shard stream still holds (domain.dead_letters.ports.ShardBacklog), for the sweeper."""
    from storage.jobs.shard_sweep import RedisShardBacklog

    return RedisShardBacklog(platform.redis)


def build_dead_letters(platform: Platform):
    """The dead-letter streams and each dead letter's log (domain.dead_letters.ports), for the CLI."""
    from storage.dead_letters.store import PostgresDeadLetterLog, RedisDeadLetterQueue

    return RedisDeadLetterQueue(platform.redis), PostgresDeadLetterLog(platform.engine)


def build_retention(platform: Platform):
    """A periodic task: prune the processed table below what every stream still holds."""
    from domain.errors import ServiceUnavailable
    from observability.supervisor import every
    from storage.streams.retention import prune_processed

    async def prune() -> None:
        await prune_processed(platform.engine, platform.redis)

    s = platform.settings
    return every(
        s.batch.retention_interval_s, prune, expected=(ServiceUnavailable,), name="retention"
    )


def build_relay(platform: Platform):
    """The log-to-streams relay (one leader at a time across processes)."""
    return platform.ops.relay()


async def build_platform(
    settings: Settings | None = None, *, run_migrations: bool = True
) -> Platform:
    """Start or connect to the servers, migrate, and wire the adapters."""
    settings = settings or get_settings()
    from storage.audit.roles import migrate_schema
    from storage.errors import postgres_errors

    engine = create_engine(database_url(settings), settings=settings)
    if run_migrations:
        async with postgres_errors():
            await migrate_schema(engine, migrate, settings.database.migration_url)
    return wire(settings, engine, create_redis(redis_url(settings)))


def wire(settings: Settings, engine: AsyncEngine, redis: aioredis.Redis) -> Platform:
    """Build every adapter once over an engine and a Redis client."""
    return Platform(
        settings=settings,
        engine=engine,
        redis=redis,
        uow=unit_of_work_factory(engine),
        registration_lock=PostgresRegistrationLock(
            engine,
            settings.database.registration_concurrency,
            settings.database.registration_wait_s,
        ),
        artifacts=LocalArtifactStore(
            settings.files.artifacts_dir,
            settings.files.artifact_import_roots,
            settings.files.max_artifact_bytes,
        ),
        inspector=TorchArtifactInspector(),
        datasets=DatasetCatalog(
            settings.files.data_dir, settings.files.cache_dir, settings.files.allow_download
        ),
        queries=RegistryQueries(engine),
        job_queries=JobQueries(engine),
        gate_queries=GateQueries(engine),
        keys=KeyQueries(engine),
        shard_queue=RedisShardQueue(redis),
        clock=SystemClock(),
        ops=PlatformOperations(engine, redis, settings.redis.relay_interval_s),
        audit=AuditService(engine, redis),
        console=ConsoleQueries(engine, redis),
    )


def build_stream_stats(platform: Platform):
    """A periodic task refreshing the stream and log gauges (lag, dead letters, relay, prod)."""
    from redis.exceptions import RedisError
    from sqlalchemy.exc import SQLAlchemyError

    from observability.metrics import instruments, register_holder_gauges
    from observability.supervisor import every
    from storage.streams import admin as stream_admin
    from storage.streams import log_stats

    holder: dict = {}
    register_holder_gauges({**stream_admin.GAUGES, **log_stats.GAUGES}, holder)

    async def refresh() -> None:
        stats = dict(holder.get("stats", {}))
        try:  # a Redis outage must not freeze the log gauges, nor the other way round
            stats.update(await stream_admin.stream_stats(platform.redis))
        finally:
            stats.update(await log_stats.log_stats(platform.engine))
            holder["stats"] = stats
            models = (labels["model_name"] for _, labels in stats["model_versions"])
            instruments().expect_models(models)  # their first batch job then shows in rate()

    expected = (RedisError, SQLAlchemyError, OSError)
    return every(5.0, refresh, expected=expected, name="stream-stats")


def build_worker_upkeep(platform: Platform, consumer: str):
    """A periodic task: the worker's heartbeat and safe stream trimming."""
    from redis.exceptions import RedisError

    from observability.supervisor import every
    from storage.streams.admin import heartbeat, trim_streams

    async def upkeep() -> None:
        await heartbeat(platform.redis, consumer)
        await trim_streams(platform.redis, platform.settings.redis.stream_maxlen)

    return every(5.0, upkeep, expected=(RedisError, OSError), name="upkeep")
