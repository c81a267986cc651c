"""Hot swap: every API process follows registry.events (fan-out, no group) and switches prod.

The new prod is loaded before the switch, so requests never wait on a load because of it;
requests already resolved keep the model they hold. A slow poll of PostgreSQL backs the
stream up while Redis is unreachable. An entry at or below the log position the last
reconciliation (or entry) reflected is ignored: after Redis lost its data the relay
republishes the whole log, and replaying old promotions would serve rolled-back versions.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

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
                for _stream, entries in reply or []:
                    for entry_id, fields in entries:
                        self.last_id = entry_id.decode()
                        await self._apply(self.last_id, fields)
            except (RedisError, OSError) as exc:
                log.warning("hot_swap_redis_unavailable", error=str(exc))
                self.last_id = "$"
                await sleep_until_stopped(stop, 1.0)

    async def _apply(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        raw = fields.get(b"position") or entry_id.partition("-")[0].encode()
        position = int(raw) if raw.isdigit() else 0
        if position <= self.applied:
            return  # already reflected (a republished entry after Redis lost its data)
        self.applied = position
        type_name = fields.get(b"type", b"").decode(errors="replace")
        if type_name not in {
            "ModelVersionPromoted",
            "ModelVersionRolledBack",
            "ModelVersionDemoted",
        }:
            return
        event = decode_event(type_name, fields[b"payload"])
        match event:
            case ModelVersionPromoted():
                await self.switch(event.model_name, event.model_version)
            case ModelVersionRolledBack():
                await self.switch(event.model_name, event.to_version)
            case ModelVersionDemoted():
                await self.switch(event.model_name, None)

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
