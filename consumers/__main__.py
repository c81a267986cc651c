"""``python -m consumers``: a worker process running the consumer groups.

Start any number of them, on any host that reaches the same PostgreSQL and Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import structlog

import bootstrap
from bootstrap import get_settings, settings_or_exit
from consumers import batch_inference, gate_evaluation, metric_aggregation
from consumers.context import WorkerContext
from consumers.runner import GroupRunner, RunnerConfig
from consumers.sweeper import build_shard_sweeper
from domain.errors import ServiceUnavailable
from events.dead_letters import DLQ_EVENTS
from observability import exposition, supervisor, tracing
from observability.logging import configure_logging
from observability.metrics import set_role

log = structlog.get_logger("worker")
GROUPS = {
    batch_inference.GROUP: batch_inference,
    metric_aggregation.GROUP: metric_aggregation,
    gate_evaluation.GROUP: gate_evaluation,
}


def build_runners(
    ctx: WorkerContext, p: bootstrap.Platform, groups: list[str]
) -> list[GroupRunner]:
    """One runner per group, calling the group module's handle / dead-letter / created hooks."""
    s = p.settings
    runners = []
    for name in groups:
        module = GROUPS[name]
        # A group whose entries are long work (shards) takes one at a time, so the entries
        # waiting behind it stay free for other workers.
        config = RunnerConfig(
            count=getattr(module, "COUNT", 10),
            claim_idle_ms=s.batch.claim_idle_ms,
            max_deliveries=s.batch.max_deliveries,
            max_retryable_deliveries=s.batch.max_retryable_deliveries,
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

        runners.append(
            GroupRunner(
                p.redis,
                name,
                [*module.STREAMS, DLQ_EVENTS],
                ctx.name,
                handler,
                config,
                dead,
                created,
            )
        )
    return runners


async def run_worker(groups: list[str], stop: asyncio.Event) -> None:
    """Run the chosen groups until ``stop`` is set."""
    settings = get_settings()
    p = await bootstrap.build_platform(settings)
    evaluator = bootstrap.build_shard_evaluator(p)
    ctx = WorkerContext(bus=p.worker_bus(evaluator, bootstrap.build_gate_latency(p, evaluator)))
    # Every worker serves its own /metrics: METRICS_PORT, or a free port when it is unset.
    try:
        port = exposition.serve_metrics(settings.api.host, settings.observability.metrics_port or 0)
    except OSError as exc:
        raise SystemExit(f"error: cannot serve metrics on METRICS_PORT: {exc}") from None
    address = exposition.scrape_address(settings.api.host, port)
    target = exposition.announce_target(
        exposition.targets_dir(settings.files.state_dir), "platform-worker", address
    )
    log.info(
        "worker_started", consumer=ctx.name, groups=groups, metrics=f"http://{address}/metrics"
    )
    print(f"worker {ctx.name}: metrics at http://{address}/metrics", file=sys.stderr, flush=True)
    tasks = {
        "upkeep": bootstrap.build_worker_upkeep(p, ctx.name),
        "stream-stats": bootstrap.build_stream_stats(p),
        # Workers relay too (one leader at a time), so jobs progress with no API process running.
        "relay": bootstrap.build_relay(p).run,
        "retention": bootstrap.build_retention(p),
    }
    if batch_inference.GROUP in groups:
        tasks["shard-sweeper"] = build_shard_sweeper(p, ctx.name)
    for runner in build_runners(ctx, p, groups):
        tasks[f"group:{runner.group}"] = runner.run
    try:
        await asyncio.gather(*(supervisor.supervise(n, t, stop) for n, t in tasks.items()))
    finally:
        exposition.withdraw_target(target)
        try:
            await p.ops.retire_worker(ctx.name)
        except ServiceUnavailable as exc:
            log.warning("heartbeat_not_removed", error=str(exc))
        await evaluator.models.aclose()
        await p.aclose()


def main() -> None:
    """Parse args, handle SIGTERM/SIGINT gracefully, run."""
    p = argparse.ArgumentParser(prog="python -m consumers", description=__doc__)
    p.add_argument(
        "--groups", default=",".join(GROUPS), help=f"comma-separated, from: {', '.join(GROUPS)}"
    )
    args = p.parse_args()
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        p.error(f"unknown group {unknown[0]!r}; choose from {', '.join(GROUPS)}")
    obs = settings_or_exit().observability
    configure_logging(obs.level())
    tracing.configure_tracing(
        obs.otel_service_name or "platform-worker", obs.exporting, obs.otel_traces_sampler
    )
    set_role("worker", obs.otel_service_name)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(groups, stop)

    try:
        asyncio.run(_main())
    finally:
        tracing.shutdown_tracing()


if __name__ == "__main__":
    main()
