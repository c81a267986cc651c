"""What a worker process gets from the composition root: the groups' context (the command bus
with the worker's models), one runner per group, and its background work."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import ModuleType

import structlog

from bootstrap.background import Background
from bootstrap.models import build_gate_latency, build_shard_evaluator
from bootstrap.platform import Platform, build_platform
from bootstrap.tasks import (
    build_checkpointer,
    build_retention,
    build_shard_backlog,
    build_stream_stats,
    build_traffic_retention,
    build_worker_upkeep,
)
from consumers import batch_inference
from consumers.context import WorkerContext
from consumers.runner import GroupRunner, RunnerConfig
from consumers.sweeper import build_shard_sweeper
from domain.errors import ServiceUnavailable
from events.dead_letters import DLQ_EVENTS
from settings import Settings

log = structlog.get_logger("worker")


@dataclass(frozen=True, kw_only=True)
class Worker:
    """A worker process's parts: its name and context, and the tasks it runs."""

    context: WorkerContext
    background: Background

    @property
    def name(self) -> str:
        """The consumer name of this process."""
        return self.context.name


def build_runners(
    ctx: WorkerContext, p: Platform, groups: Mapping[str, ModuleType]
) -> list[GroupRunner]:
    """One runner per group, calling the group module's handle / dead-letter / created hooks."""
    s = p.settings.batch
    runners = []
    for name, module in groups.items():
        # A group whose entries are long work (shards) takes one at a time, so the entries
        # waiting behind it stay free for other workers.
        config = RunnerConfig(
            count=getattr(module, "COUNT", 10),
            claim_idle_ms=s.claim_idle_ms,
            max_deliveries=s.max_deliveries,
            max_retryable_deliveries=s.max_retryable_deliveries,
        )

        async def handler(stream, entry_id, fields, module=module):
            await module.handle(ctx, stream, entry_id, fields)

        async def dead(stream, entry_id, fields, reason, module=module):
            # A group without its own hook fails the batch job the entry belongs to.
            hook = getattr(module, "dead_lettered", batch_inference.dead_lettered)
            await hook(ctx, stream, entry_id, fields, reason)

        async def created(stream: str, module=module) -> None:
            if hook := getattr(module, "group_created", None):
                await hook(ctx, stream)

        streams = [*module.STREAMS, DLQ_EVENTS]
        runners.append(
            GroupRunner(p.redis, name, streams, ctx.name, handler, config, dead, created)
        )
    return runners


@contextlib.asynccontextmanager
async def worker(settings: Settings, groups: Mapping[str, ModuleType]) -> AsyncIterator[Worker]:
    """Connect (or start the servers), build the worker's models, its groups' runners and its
    tasks; on exit, withdraw its heartbeat and release everything."""
    p = await build_platform(settings)
    evaluator = build_shard_evaluator(p)
    ctx = WorkerContext(bus=p.worker_bus(evaluator, build_gate_latency(p, evaluator)))
    background = Background()
    background.add("upkeep", build_worker_upkeep(p, ctx.name))
    background.add("stream-stats", build_stream_stats(p))
    # Workers relay too (one leader at a time), so jobs progress with no API process running.
    background.add("relay", p.relay.run)
    background.add("checkpointer", build_checkpointer(p))
    background.add("retention", build_retention(p))
    background.add("traffic-retention", build_traffic_retention(p))
    if batch_inference.GROUP in groups:
        sweeper = build_shard_sweeper(p, build_shard_backlog(p), ctx.name)
        background.add("shard-sweeper", sweeper)
    from consumers import shadow_evaluation

    if shadow_evaluation.GROUP in groups:
        evaluate = shadow_evaluation.evaluator(ctx, p.online_ports.log)
        background.add("online-evaluator", evaluate)
    for runner in build_runners(ctx, p, groups):
        background.add(f"group:{runner.group}", runner.run)
    try:
        yield Worker(context=ctx, background=background)
    finally:
        try:
            await p.ops.retire_worker(ctx.name)
        except ServiceUnavailable as exc:
            log.warning("heartbeat_not_removed", error=str(exc))
        await evaluator.models.aclose()
        await p.aclose()
