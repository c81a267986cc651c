"""Hot swap: every API process follows registry.events (fan-out, no group) and switches prod.

The new prod is loaded before the switch, so requests never wait on a load because of it;
requests already resolved keep the model they hold. A slow poll of PostgreSQL backs the
stream up while Redis is unreachable. An entry at or below the log position the last
reconciliation (or entry) reflected is ignored: after Redis lost its data the relay
republishes the whole log, and replaying old promotions would serve rolled-back versions.

Entries are hints, never orders: anyone who can write to Redis can add one. On a prod entry
the follower reads the model's prod from PostgreSQL (as of at least the entry's position);
an entry beyond the log's head is ignored, and a malformed one is logged and skipped.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import msgspec
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from domain.errors import DomainError, ServiceUnavailable
from events.codec import decode_event
from events.registry import ModelVersionDemoted, ModelVersionPromoted, ModelVersionRolledBack
from events.streams import REGISTRY_STREAM
from ml.inference import InferenceService
from observability.metrics import instruments
from observability.supervisor import sleep_until_stopped

log = structlog.get_logger("hot_swap")
PROD_EVENTS = frozenset(
    t.__name__ for t in (ModelVersionPromoted, ModelVersionRolledBack, ModelVersionDemoted)
)


def _id(entry_id: str) -> tuple[int, int]:
    """A stream entry id as a comparable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class ProdLookup(Protocol):
    """Reads a model's prod version from the registry projection."""

    async def require_prod(self, model_name: str) -> str:
        """The prod version; NotFound or Conflict when there is none."""
        ...

    async def registry_position(self) -> int:
        """The log position the registry projection reflects."""
        ...


class ProdFollower:
    """Keeps an InferenceService's prod map current."""

    def __init__(
        self,
        service: InferenceService,
        redis: aioredis.Redis,
        queries: ProdLookup,
        *,
        block_ms: int = 1000,
        poll_s: float = 5.0,
    ) -> None:
        self.service = service
        self.redis = redis
        self.queries = queries
        self.block_ms = block_ms
        self.poll_s = poll_s
        self.applied = 0  # the log position this process's prod map reflects
        self.last_id = "$"  # where the stream read resumes

    async def switch(self, model_name: str, version: str | None) -> None:
        """Preload ``version`` (if any) then make it prod in this process."""
        current = self.service.prod.get(model_name, object())
        if current == version:
            return
        if version is not None and model_name in self.service.prod:
            try:
                await self.service.resolve(model_name, version)
            except DomainError as exc:
                log.warning(
                    "prod_preload_failed",
                    model_name=model_name,
                    model_version=version,
                    error=str(exc),
                )
        self.service.set_prod(model_name, version)
        instruments().hot_swaps.add(1)
        log.info("prod_switched", model_name=model_name, model_version=version)

    async def follow(self, stop: asyncio.Event) -> None:
        """Read the stream from its current end until ``stop``."""
        self.last_id = "$"
        while not stop.is_set():
            try:
                if self.last_id == "$":
                    tail = await self.redis.xrevrange(REGISTRY_STREAM, count=1)
                    self.last_id = tail[0][0].decode() if tail else "0-0"
                    await self.reconcile()
                reply = await self.redis.xread(
                    {REGISTRY_STREAM: self.last_id}, block=self.block_ms, count=100
                )
                if not reply:
                    await self._notice_rebuilt_stream()
                for _stream, entries in reply or []:
                    for entry_id, fields in entries:
                        self.last_id = entry_id.decode()
                        await self._apply(self.last_id, fields)
            except (RedisError, OSError) as exc:
                log.warning("hot_swap_redis_unavailable", error=str(exc))
                self.last_id = "$"
                await sleep_until_stopped(stop, 1.0)
            except ServiceUnavailable as exc:  # PostgreSQL away: the poll catches up later
                log.warning("hot_swap_postgres_unavailable", error=str(exc))
                await sleep_until_stopped(stop, 1.0)

    async def _notice_rebuilt_stream(self) -> None:
        """A stream recreated below where this follower read (`just relay --rebuild`): read on
        from its new end, or no later entry would ever reach it."""
        tail = await self.redis.xrevrange(REGISTRY_STREAM, count=1)
        if tail and _id(tail[0][0].decode()) < _id(self.last_id):
            log.warning("hot_swap_stream_rewound", was=self.last_id, now=tail[0][0].decode())
            self.last_id = "$"

    async def _apply(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        """An entry is a hint that prod may have changed: prod itself is read from PostgreSQL."""
        type_name = fields.get(b"type", b"").decode(errors="replace")
        if type_name not in PROD_EVENTS:
            return
        try:
            position = int(fields.get(b"position") or entry_id.partition("-")[0])
            model_name = decode_event(type_name, fields[b"payload"]).model_name  # type: ignore[attr-defined]
        except (KeyError, ValueError, msgspec.MsgspecError) as exc:
            log.warning("hot_swap_entry_skipped", entry_id=entry_id, error=str(exc)[:200])
            return
        if position <= self.applied:
            return  # already reflected (a republished entry after Redis lost its data)
        # Read first: the prod read after it reflects at least this position.
        head = await self.queries.registry_position()
        if position > head:
            # No such event in the log (yet): a forged or foreign entry. Never trusted, and
            # this follower's position never moves past what the log holds.
            log.warning(
                "hot_swap_entry_ahead_of_log", entry_id=entry_id, position=position, head=head
            )
            return
        try:
            version = await self.queries.require_prod(model_name)
        except DomainError:
            version = None
        await self.switch(model_name, version)
        self.applied = max(self.applied, position)

    async def reconcile(self) -> None:
        """Re-read prod from PostgreSQL for every model this process serves."""
        # Read first: every prod read after it reflects at least this position.
        position = await self.queries.registry_position()
        for name in list(self.service.prod):
            try:
                version = await self.queries.require_prod(name)
            except DomainError:
                version = None
            await self.switch(name, version)
        self.applied = max(self.applied, position)

    async def poll(self, stop: asyncio.Event) -> None:
        """Reconcile every ``poll_s`` seconds, in case stream entries were missed."""
        while not await sleep_until_stopped(stop, self.poll_s):
            try:
                await self.reconcile()
            except ServiceUnavailable as exc:
                log.warning("hot_swap_poll_failed", error=str(exc))
