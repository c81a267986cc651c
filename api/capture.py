"""Traffic capture in an API process: sample answered requests by each model's capture policy,
off the response path, into ``traffic.captured`` (the traffic-recorder group stores them).

``after`` runs on the response path: a dict lookup when the model has no policy, else a coin
flip, a token bucket (max_per_s in this process) and a put_nowait into a bounded queue, dropped
and counted when full. A background task drains the queue in batches to one XADD each (MAXLEN
~ bounded); another re-reads the policies from PostgreSQL every second, so every process
follows a policy change within about a second.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime

import numpy as np
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from api.online_hooks import Served
from api.queue_drain import drain
from domain.errors import ServiceUnavailable
from domain.traffic.commands import CapturedRow, encode_rows
from domain.traffic.policy import DEFAULT_RETENTION_DAYS, CapturePolicy
from domain.traffic.ports import TrafficLog
from events.traffic import CAPTURED_STREAM
from observability.metrics import instruments
from observability.supervisor import sleep_until_stopped

log = structlog.get_logger("capture")
QUEUE_SIZE = 2048  # captured requests waiting for their XADD in this process
BATCH = 64  # rows per stream entry
STREAM_MAXLEN = 20_000  # entries (~1.3M requests) kept for the recorder; approximate trim
REFRESH_S = 1.0
LINGER_S = 0.2  # a batch waits this long to fill (api/queue_drain.py)


def to_row(served: Served, retention_days: int, at: datetime) -> CapturedRow:
    """A Served as the row the recorder stores (the input as its raw [28,28] tensor bytes)."""
    image = served.input
    dtype = "uint8" if image.dtype == np.uint8 else "float32"
    raw = np.ascontiguousarray(image, dtype=np.uint8 if dtype == "uint8" else np.float32)
    return CapturedRow(
        request_id=served.request_id,
        model_name=served.model_name,
        model_version=served.model_version,
        captured_at=at,
        input=raw.tobytes(),
        input_dtype=dtype,
        prediction=served.prediction,
        scores=served.scores,
        latency_ms=served.latency_ms,
        retention_days=retention_days,
        trace_id=served.trace_id,
        routed=served.routed,
    )


class CaptureSampler:
    """The capture subscriber of OnlineHooks (``hooks.capture``) and its two background tasks."""

    def __init__(
        self, redis: aioredis.Redis, policies: TrafficLog, *, queue_size: int = QUEUE_SIZE
    ) -> None:
        self.redis = redis
        self.reader = policies
        self.policies: dict[str, CapturePolicy] = {}  # models with a fraction above 0 only
        self.queue: asyncio.Queue[tuple[Served, int, datetime]] = asyncio.Queue(queue_size)
        self._buckets: dict[str, list[float]] = {}  # model -> [tokens, last refill]
        self._inst = instruments()

    def wants(self, model_name: str) -> bool:
        """Whether the model has a capture policy."""
        return model_name in self.policies

    def _allowed(self, policy: CapturePolicy) -> bool:
        """A token bucket of max_per_s per model in this process (burst: one second's worth)."""
        now = time.monotonic()
        rate = policy.max_per_s
        bucket = self._buckets.setdefault(policy.model_name, [max(1.0, rate), now])
        bucket[0] = min(max(1.0, rate), bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if bucket[0] < 1.0:
            return False
        bucket[0] -= 1.0
        return True

    def after(self, served: Served) -> None:
        """Sample (always for kept or routed requests) and queue without waiting."""
        policy = self.policies.get(served.model_name)
        days = policy.retention_days if policy else DEFAULT_RETENTION_DAYS
        if not (served.keep or served.routed) and not self._sampled(policy):
            return
        try:
            self.queue.put_nowait((served, days, datetime.now(UTC)))  # when it was answered
        except asyncio.QueueFull:
            self._dropped(served.model_name, "queue_full")

    def _sampled(self, policy: CapturePolicy | None) -> bool:
        if policy is None or random.random() >= policy.fraction:
            return False
        return self._allowed(policy)

    def _dropped(self, model_name: str, reason: str, n: int = 1) -> None:
        self._inst.traffic_dropped.add(n, {"model_name": model_name, "reason": reason})

    async def write(self, stop: asyncio.Event) -> None:
        """Drain the queue in batches, one XADD per batch, until ``stop``."""
        await drain(self.queue, stop, self.flush, size=BATCH, linger_s=LINGER_S)

    async def flush(self, batch: list[tuple[Served, int, datetime]]) -> None:
        """One XADD of a batch; a Redis failure drops it (counted), never blocks serving."""
        rows = [to_row(served, days, at) for served, days, at in batch]
        try:
            await self.redis.xadd(
                CAPTURED_STREAM,
                {"rows": encode_rows(rows)},
                maxlen=STREAM_MAXLEN,
                approximate=True,
            )
        except (RedisError, OSError) as exc:
            log.warning("capture_write_failed", error=str(exc), dropped=len(rows))
            for r in rows:
                self._dropped(r.model_name, "redis_error")
            return
        for r in rows:
            self._inst.traffic_captured.add(1, {"model_name": r.model_name})

    async def refresh_once(self) -> None:
        """Re-read every model's policy from PostgreSQL."""
        found = await self.reader.policies()
        self.policies = {p.model_name: p for p in found if p.fraction > 0}

    async def refresh(self, stop: asyncio.Event) -> None:
        """Follow policy changes: re-read them every REFRESH_S until ``stop``."""
        while True:
            try:
                await self.refresh_once()
            except ServiceUnavailable as exc:  # keep the last policies while PostgreSQL is away
                log.warning("capture_policies_unavailable", error=str(exc))
            if await sleep_until_stopped(stop, REFRESH_S):
                return
