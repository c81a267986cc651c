"""``python -m consumers``: a worker process running the consumer groups.

Start any number of them, on any host that reaches the same PostgreSQL and Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import structlog

import bootstrap
from consumers import batch_inference, metric_aggregation
from consumers.context import WorkerContext
from consumers.runner import GroupRunner, RunnerConfig
from observability.logging import configure_logging
from observability.metrics import register_holder_gauges
from settings import get_settings
from storage.relay import Relay
from storage.stream_admin import GAUGES, stream_stats, trim_streams

log = structlog.get_logger("worker")
GROUPS = {batch_inference.GROUP: batch_inference, metric_aggregation.GROUP: metric_aggregation}


HEARTBEAT_PREFIX = "platform:workers:"


async def upkeep(ctx: WorkerContext, stop: asyncio.Event, holder: dict) -> None:
    """Heartbeat, trim streams safely and refresh stream gauges every few seconds."""
    redis = ctx.platform.redis
    while not stop.is_set():
        with contextlib.suppress(Exception):
            await redis.set(HEARTBEAT_PREFIX + ctx.name, "alive", ex=15)
            await trim_streams(redis, ctx.platform.settings.stream_maxlen)
            holder["stats"] = await stream_stats(redis)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5.0)


async def run_worker(groups: list[str], stop: asyncio.Event) -> None:
    """Run the chosen groups until ``stop`` is set."""
    settings = get_settings()
    platform = await bootstrap.build_platform(settings)
    from ml.serving import ModelCache

    models = ModelCache(
        platform.artifacts.path_for,
        max_models=settings.model_cache_size,
        torch_threads=settings.torch_threads,
    )
    ctx = WorkerContext(platform=platform, models=models)
    config = RunnerConfig(
        claim_idle_ms=settings.claim_idle_ms, max_deliveries=settings.max_deliveries
    )
    runners = []
    for name in groups:
        module = GROUPS[name]

        async def handler(stream, entry_id, fields, module=module):
            await module.handle(ctx, stream, entry_id, fields)

        async def dead(stream, entry_id, fields, reason):
            await batch_inference.fail_job(ctx, stream, entry_id, fields, reason)

        async def created(stream: str, module=module) -> None:
            if module is batch_inference and stream == batch_inference.STREAMS[-1]:
                await batch_inference.replan_running_jobs(ctx)

        runners.append(
            GroupRunner(
                platform.redis, name, list(module.STREAMS), ctx.name, handler, config, dead, created
            )
        )
    holder: dict = {}
    register_holder_gauges(GAUGES, holder)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        from observability.metrics import meter

        meter()
        start_http_server(settings.metrics_port)
    log.info("worker_started", consumer=ctx.name, groups=groups)
    # Workers relay too (one leader at a time), so jobs progress with no API process running.
    relay = Relay(platform.engine, platform.redis, settings.relay_interval_s)
    try:
        await asyncio.gather(
            upkeep(ctx, stop, holder), relay.run(stop), *(r.run(stop) for r in runners)
        )
    finally:
        with contextlib.suppress(Exception):
            await platform.redis.delete(HEARTBEAT_PREFIX + ctx.name)
        await models.aclose()
        await platform.aclose()


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
    configure_logging(get_settings().log_level)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(groups, stop)

    asyncio.run(_main())


if __name__ == "__main__":
    main()
