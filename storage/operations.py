"""Operator actions on the servers themselves: relay now, verify, rebuild, worker heartbeats."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.audit.reports import Finding
from domain.errors import InvalidInput
from storage import event_store
from storage.audit.auditor import relay_anchor_findings
from storage.audit.streams import event_streams
from storage.errors import postgres_errors, redis_errors
from storage.projections import rebuild_projections
from storage.streams import admin as stream_admin
from storage.streams.relay import Relay


class PlatformOperations:
    """Maintenance verbs for the CLI and the worker, each raising ServiceUnavailable on outages."""

    def __init__(self, engine: AsyncEngine, redis: aioredis.Redis, relay_interval_s: float) -> None:
        self.engine = engine
        self.redis = redis
        self.relay_interval_s = relay_interval_s

    def relay(self) -> Relay:
        """A log-to-streams relay (one leader at a time across processes)."""
        return Relay(self.engine, self.redis, self.relay_interval_s)

    async def ping_redis(self) -> None:
        """ServiceUnavailable when Redis does not answer."""
        async with redis_errors():
            await self.redis.ping()

    async def publish_pending(self) -> int | None:
        """One relay pass now (None when another relay leads)."""
        async with postgres_errors(), redis_errors():
            return await self.relay().publish_once()

    async def rebuild_stream(self, stream: str, wait_s: float = 60.0) -> dict:
        """Recreate an event stream from the log, its consumer groups at their positions."""
        known = event_streams()
        if stream not in known:
            raise InvalidInput(f"unknown event stream {stream!r}; known: {', '.join(known)}")
        async with postgres_errors(), redis_errors():
            return await self.relay().rebuild(stream, wait_s)

    async def verify_log(self) -> tuple[event_store.IntegrityReport, list[Finding]]:
        """The hash chain end to end, and whether the log still holds the relay's last head.

        A chain alone cannot reveal a deleted tail; the anchor kept in Redis can.
        """
        async with postgres_errors(), self.engine.connect() as conn:
            report = await event_store.verify_chain(conn)
            try:
                await self.redis.ping()
            except (RedisError, OSError):  # no Redis, no anchor: the chain check still stands
                return report, []
            anchor = await relay_anchor_findings(conn, self.redis, {})
        return report, anchor

    async def rebuild_projections(self) -> int:
        """Drop the projections and replay the log into them; returns streams replayed."""
        async with postgres_errors():
            return await rebuild_projections(self.engine)

    async def retire_worker(self, consumer: str) -> None:
        """Remove a stopping worker's heartbeat."""
        async with redis_errors():
            await stream_admin.retire(self.redis, consumer)

    async def live_workers(self) -> int:
        """Workers whose heartbeat is fresh."""
        async with redis_errors():
            return await stream_admin.live_workers(self.redis)
