"""What an API process gets from the composition root: the command bus, the readers, its
settings, the inference service, and its background work, built once at start-up."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from bootstrap.background import Background
from bootstrap.models import build_inference
from bootstrap.platform import Platform, build_platform
from bootstrap.tasks import build_checkpointer, build_stream_stats
from domain.bus import MessageBus
from domain.keys.buckets import RateLimiter, TokenBuckets
from ml.inference import InferenceService

if TYPE_CHECKING:
    from api.online_hooks import OnlineHooks
from settings import Settings
from storage.audit.service import AuditService
from storage.audit.transparency import TransparencyLog
from storage.console.queries import ConsoleQueries
from storage.console.sessions import PostgresSessionStore
from storage.gates.queries import GateQueries
from storage.jobs.queries import JobQueries
from storage.keys.limiter import RedisRateLimiter, quick_redis
from storage.keys.queries import KeyQueries
from storage.operations import PlatformOperations
from storage.registry.queries import RegistryQueries


@dataclass(frozen=True, kw_only=True)
class ApiServices:
    """An API process's dependencies; controllers ask for those in ``NAMES`` by parameter name."""

    NAMES: ClassVar[tuple[str, ...]] = (
        "bus",
        "settings",
        "queries",
        "job_queries",
        "gate_queries",
        "keys",
        "audit",
        "console",
        "transparency",
    )
    settings: Settings
    bus: MessageBus
    queries: RegistryQueries
    job_queries: JobQueries
    gate_queries: GateQueries
    keys: KeyQueries
    audit: AuditService
    console: ConsoleQueries
    transparency: TransparencyLog
    sessions: PostgresSessionStore  # the console's (api/ui/session.py), not a parameter
    inference: InferenceService
    background: Background
    limiter: RateLimiter
    online: OnlineHooks  # the request path hooks (api/online_hooks.py), on app.state.online


LIMITER_TIMEOUT_S = 0.5  # a rate-limit check waits no longer for Redis, then goes local


@contextlib.asynccontextmanager
async def api_services(
    settings: Settings, platform: Platform | None = None, *, run_relay: bool = True
) -> AsyncIterator[ApiServices]:
    """Connect (or start the servers) unless ``platform`` is given, build everything the API
    uses, and release it when the block ends (the platform only if built here)."""
    from api.capture import CaptureSampler
    from api.hot_swap import ProdFollower
    from api.online_hooks import OnlineHooks
    from api.supervisor import MIGRATED_ENV
    from api.warm_up import start_up

    owned = platform is None
    # Under the supervisor its check migrated already: alembic (~7 MB a process) stays out.
    p = platform or await build_platform(settings, run_migrations=not os.environ.get(MIGRATED_ENV))
    inference = build_inference(p)
    background = Background()
    background.add("stream-stats", build_stream_stats(p))
    serving = settings.serving
    limit, load = serving.model_cache_size, serving.warm_up
    background.once["warm-up"] = lambda: start_up(p.queries, inference, limit, load)
    if serving.hot_swap:
        follower = ProdFollower(inference, p.redis, p.queries)
        background.add("hot-swap", follower.follow)
        background.add("hot-swap-poll", follower.poll)
    online = OnlineHooks()
    capture = CaptureSampler(p.redis, p.traffic_ports.log)
    online.capture = capture  # after every other subscriber: it takes what they mark to keep
    background.add("capture-writer", capture.write)
    background.add("capture-policies", capture.refresh)
    from api.online_mirror import OnlineFollower

    follower_online = OnlineFollower(inference, p.redis, p.online_ports.log)
    online.subscribe(follower_online)  # before capture: it marks mirrored requests to keep
    online.set_router(follower_online)
    background.add("online-mirror", follower_online.mirror)
    background.add("online-outcomes", follower_online.write)
    background.add("online-runs", follower_online.refresh)
    if run_relay:
        background.add("relay", p.relay.run)
        background.add("checkpointer", build_checkpointer(p))
    # Rate limits shared by every API process through Redis, per process while it is away.
    sec = settings.security
    limiter_redis = quick_redis(p.redis, LIMITER_TIMEOUT_S)
    local = TokenBuckets(sec.rate_limit_per_s, sec.rate_limit_burst)
    limiter = RedisRateLimiter(limiter_redis, sec.rate_limit_per_s, sec.rate_limit_burst, local)
    try:
        yield ApiServices(
            settings=settings,
            bus=p.bus,
            queries=p.queries,
            job_queries=p.job_queries,
            gate_queries=p.gate_queries,
            keys=p.keys,
            audit=p.audit,
            console=p.console,
            transparency=p.transparency,
            sessions=p.sessions,
            inference=inference,
            background=background,
            limiter=limiter,
            online=online,
        )
    finally:
        await inference.cache.aclose()
        await limiter_redis.aclose()
        if owned:
            await p.aclose()


@dataclass(frozen=True, kw_only=True)
class Servers:
    """What ``python -m api`` checks before it listens: the database, the keys, Redis."""

    queries: RegistryQueries
    keys: KeyQueries
    ops: PlatformOperations


@contextlib.asynccontextmanager
async def reach_servers(settings: Settings, *, migrate: bool = False) -> AsyncIterator[Servers]:
    """Start or reach the servers; migrate only when asked (else the first API process does)."""
    p = await build_platform(settings, run_migrations=migrate)
    try:
        yield Servers(queries=p.queries, keys=p.keys, ops=p.ops)
    finally:
        await p.aclose()
