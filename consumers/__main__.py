"""``python -m consumers``: a worker process running the consumer groups.

Start any number of them, on any host that reaches the same PostgreSQL and Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import structlog

from bootstrap import get_settings, settings_or_exit
from bootstrap.worker import worker as build_worker
from consumers import (
    batch_inference,
    gate_evaluation,
    metric_aggregation,
    shadow_evaluation,
    traffic_recorder,
)
from observability import exposition, tracing
from observability.logging import configure_logging
from observability.metrics import set_role

log = structlog.get_logger("worker")
GROUPS = {
    batch_inference.GROUP: batch_inference,
    metric_aggregation.GROUP: metric_aggregation,
    gate_evaluation.GROUP: gate_evaluation,
    traffic_recorder.GROUP: traffic_recorder,
    shadow_evaluation.GROUP: shadow_evaluation,
}


async def run_worker(groups: list[str], stop: asyncio.Event) -> None:
    """Run the chosen groups until ``stop`` is set."""
    settings = get_settings()
    async with build_worker(settings, {name: GROUPS[name] for name in groups}) as worker:
        # Every worker serves its own /metrics: METRICS_PORT, or a free port when it is unset.
        host, metrics_port = settings.api.host, settings.observability.metrics_port
        try:
            port = exposition.serve_metrics(host, metrics_port or 0)
        except OSError as exc:
            raise SystemExit(f"error: cannot serve metrics on METRICS_PORT: {exc}") from None
        address = exposition.scrape_address(host, port)
        target = exposition.announce_target(
            exposition.targets_dir(settings.files.state_dir), "platform-worker", address
        )
        url = f"http://{address}/metrics"
        log.info("worker_started", consumer=worker.name, groups=groups, metrics=url)
        print(f"worker {worker.name}: metrics at {url}", file=sys.stderr, flush=True)
        try:
            await worker.background.run(stop)
        finally:
            exposition.withdraw_target(target)


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
