"""The lost-shard sweeper: a periodic task in every worker (one sweeps per period).

Shard work messages live only in Redis. When Redis loses some (a restored snapshot, a trimmed
or deleted stream) while the consumer group survives, nothing else would notice: a running
job whose shards are neither stored, nor queued, nor in progress, and that has not moved for
``SHARD_SWEEP_GRACE_S``, gets those shards dispatched again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

import structlog

from bootstrap import Settings
from domain.bus import MessageBus
from domain.dead_letters.ports import ShardBacklog
from domain.errors import ServiceUnavailable
from domain.jobs.commands import ReplanLostShards
from domain.ports import Clock
from observability.supervisor import Task, every

log = structlog.get_logger("shard-sweeper")


class Sweeping(Protocol):
    """What a sweep uses: the settings (interval, grace), the clock and the command bus."""

    @property
    def settings(self) -> Settings: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def bus(self) -> MessageBus: ...


async def sweep_lost_shards(
    p: Sweeping, backlog: ShardBacklog, consumer: str
) -> dict[str, int] | None:
    """One pass; None when another worker swept this period. Shards re-dispatched per job."""
    s = p.settings
    if not await backlog.lead(consumer, s.batch.shard_sweep_interval_s):
        return None
    outstanding = await backlog.outstanding()  # before the jobs are read: see the handler
    idle_before = p.clock.now() - timedelta(seconds=s.batch.shard_sweep_grace_s)
    cmd = ReplanLostShards(outstanding=frozenset(outstanding), idle_before=idle_before)
    replanned = await p.bus.handle(cmd)
    for job_id, shards in replanned.items():
        log.warning("lost_shards_replanned", job_id=job_id, shards=shards)
    return replanned


def build_shard_sweeper(p: Sweeping, backlog: ShardBacklog, consumer: str) -> Task:
    """The supervised periodic task of a worker (bootstrap.worker builds it)."""

    async def sweep() -> None:
        await sweep_lost_shards(p, backlog, consumer)

    return every(
        p.settings.batch.shard_sweep_interval_s,
        sweep,
        expected=(ServiceUnavailable,),
        name="shard-sweeper",
    )
