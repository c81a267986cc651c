"""Every adapter, built once over one engine and one Redis client, and the command bus on them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from bootstrap.servers import create_engine, database_url, migrate, redis_url
from domain.bus import MessageBus, bind
from domain.dead_letters import handlers as dead_letter_handlers
from domain.dead_letters.ports import DeadLetterPorts
from domain.gates import handlers as gate_handlers
from domain.gates.ports import GatePorts, PairedLatencyMeter, VerdictPorts
from domain.jobs import handlers as job_handlers
from domain.jobs.ports import JobLimits, JobPorts, ShardEvaluator, ShardPorts
from domain.keys import handlers as key_handlers
from domain.keys.handlers import new_secret
from domain.keys.ports import KeyPorts
from domain.online import handlers as online_handlers
from domain.online.ports import OnlinePorts
from domain.ports import UnitOfWorkFactory
from domain.registry import handlers as registry_handlers
from domain.registry.ports import RegistryPorts
from domain.traffic import handlers as traffic_handlers
from domain.traffic.ports import TrafficPorts
from ml.catalog import DatasetCatalog
from ml.inspector import TorchArtifactInspector
from settings import Settings, get_settings
from storage import event_store
from storage.audit.service import AuditService
from storage.audit.transparency import LogPolicy, TransparencyLog
from storage.connections import create_redis
from storage.console.queries import ConsoleQueries
from storage.console.sessions import PostgresSessionStore
from storage.gates.queries import GateQueries
from storage.jobs.queries import JobQueries
from storage.jobs.shard_queue import RedisShardQueue
from storage.keys.queries import KeyQueries
from storage.operations import PlatformOperations
from storage.registry.artifacts import LocalArtifactStore
from storage.registry.lock import PostgresRegistrationLock
from storage.registry.queries import RegistryQueries
from storage.streams.relay import Relay
from storage.traffic.store import TrafficDatasets
from storage.unit_of_work import unit_of_work_factory


class SystemClock:
    """Implements domain.ports.Clock with the wall clock."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Platform:
    """Every adapter, built once. Entrypoints get theirs through bootstrap's per-entrypoint
    builders (bootstrap.api, bootstrap.worker, bootstrap.cli); tests may take any field."""

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
    sessions: PostgresSessionStore
    transparency: TransparencyLog

    @cached_property
    def relay(self) -> Relay:
        """The log-to-streams relay of this process (one leader at a time across processes)."""
        return self.ops.relay()

    @cached_property
    def job_ports(self) -> JobPorts:
        """The job handlers' ports, with the limits from the batch settings."""
        batch = self.settings.batch
        limits = JobLimits(
            shard_size=batch.shard_size,
            max_shards=batch.max_shards_per_job,
            max_active=batch.max_active_jobs_per_key,
        )
        return JobPorts(
            uow=self.uow,
            datasets=self.datasets,
            queue=self.shard_queue,
            clock=self.clock,
            limits=limits,
        )

    @cached_property
    def traffic_ports(self) -> TrafficPorts:
        """The traffic handlers' ports: policies and datasets in the log, captured requests."""
        from storage.traffic.store import PostgresCapturedRequests, PostgresTrafficLog

        return TrafficPorts(
            uow=self.uow,
            log=PostgresTrafficLog(self.engine),
            captured=PostgresCapturedRequests(self.engine),
            clock=self.clock,
        )

    @cached_property
    def online_ports(self) -> OnlinePorts:
        """The shadow and canary handlers' ports; a canary promotes through the registry's."""
        from storage.online.store import PostgresOnlineLog, PostgresOutcomes

        registry = self.registry_ports

        async def promote(cmd):
            return await registry_handlers.promote_model_version(cmd, registry)

        return OnlinePorts(
            uow=self.uow,
            log=PostgresOnlineLog(self.engine),
            outcomes=PostgresOutcomes(self.engine),
            clock=self.clock,
            promote=promote,
        )

    @cached_property
    def registry_ports(self) -> RegistryPorts:
        """The registry handlers' ports."""
        return RegistryPorts(
            uow=self.uow,
            artifacts=self.artifacts,
            inspector=self.inspector,
            lock=self.registration_lock,
            clock=self.clock,
        )

    @cached_property
    def bus(self) -> MessageBus:
        """Every command a process serves without models of its own (a worker adds those)."""
        from storage.dead_letters.store import PostgresDeadLetterLog, RedisDeadLetterQueue

        registry = self.registry_ports
        gates = GatePorts(
            uow=self.uow, datasets=self.datasets, clock=self.clock, jobs=self.job_ports
        )
        letters = DeadLetterPorts(
            queue=RedisDeadLetterQueue(self.redis), log=PostgresDeadLetterLog(self.engine)
        )
        return MessageBus(
            bind(registry_handlers.HANDLERS, registry),
            bind(job_handlers.HANDLERS, self.job_ports),
            bind(gate_handlers.HANDLERS, gates),
            bind(key_handlers.HANDLERS, KeyPorts(uow=self.uow, new_secret=new_secret)),
            bind(dead_letter_handlers.HANDLERS, letters),
            bind(traffic_handlers.HANDLERS, self.traffic_ports),
            bind(online_handlers.HANDLERS, self.online_ports),
        )

    def worker_bus(self, evaluator: ShardEvaluator, latency: PairedLatencyMeter) -> MessageBus:
        """The bus of a worker: every command, shards and gate verdicts (its models) included."""
        return self.bus.including(
            bind(job_handlers.SHARD_HANDLERS, ShardPorts(uow=self.uow, evaluator=evaluator)),
            bind(gate_handlers.VERDICT_HANDLERS, VerdictPorts(uow=self.uow, latency=latency)),
        )

    async def aclose(self) -> None:
        """Release connections."""
        await self.redis.aclose()
        await self.engine.dispose()


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
    files, database = settings.files, settings.database
    t = settings.transparency
    policy = LogPolicy(
        key_file=t.signing_key_file or files.state_dir / "audit-signing.key",
        origin=t.log_origin,
        witness_keys=t.witness_keys,
        every=t.checkpoint_every_events,
        interval_s=t.checkpoint_interval_s,
    )
    transparency = TransparencyLog(engine, redis, policy)
    if settings.security.audit_hmac_key:  # else a key a test set stays
        event_store.set_hmac_key(settings.security.audit_hmac_key)
    return Platform(
        settings=settings,
        engine=engine,
        redis=redis,
        uow=unit_of_work_factory(engine),
        registration_lock=PostgresRegistrationLock(
            engine, database.registration_concurrency, database.registration_wait_s
        ),
        artifacts=LocalArtifactStore(
            files.artifacts_dir, files.artifact_import_roots, files.max_artifact_bytes
        ),
        inspector=TorchArtifactInspector(),
        datasets=DatasetCatalog(
            files.data_dir, files.cache_dir, files.allow_download, TrafficDatasets(engine)
        ),
        queries=RegistryQueries(engine),
        job_queries=JobQueries(engine),
        gate_queries=GateQueries(engine),
        keys=KeyQueries(engine),
        shard_queue=RedisShardQueue(redis),
        clock=SystemClock(),
        ops=PlatformOperations(engine, redis, settings.redis.relay_interval_s),
        audit=AuditService(engine, redis, transparency.known_keys),
        console=ConsoleQueries(engine, redis),
        sessions=PostgresSessionStore(engine),
        transparency=transparency,
    )
