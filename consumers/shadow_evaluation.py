"""The ``shadow-evaluation`` group: store the paired outcomes API processes write to
``shadow.outcomes``, and (``evaluator``) judge every running shadow and canary each second.

The fold is in PostgreSQL (online_outcomes joined with the labels of captured_requests), so a
restarted worker loses nothing: the outcomes are rows, the runs' state is the log. Each second
the evaluator runs ``EvaluateOnline`` for every model with a shadow or canary: verdicts, steps,
aborts and the canary's promotion are events on ``online-<model>``; two workers deciding at once
are told apart by the stream version (the loser's decision is dropped and taken again).
"""

from __future__ import annotations

import asyncio

import structlog

from consumers.context import WorkerContext
from consumers.row_batches import row_batch_handlers
from domain.errors import ConcurrencyConflict, DomainError
from domain.online.commands import EvaluateOnline, RecordOutcomes, decode_outcomes
from domain.online.ports import OnlineLog
from events.base import EventMetadata
from events.online import OUTCOMES_STREAM
from observability.metrics import instruments
from observability.supervisor import sleep_until_stopped

GROUP = "shadow-evaluation"
STREAMS = [OUTCOMES_STREAM]
COUNT = 20
EVALUATE_S = 1.0
log = structlog.get_logger(GROUP)


handle, dead_lettered = row_batch_handlers(
    GROUP, "outcomes", decode_outcomes, RecordOutcomes, lambda: instruments().online_outcomes
)


async def evaluate_once(ctx: WorkerContext, runs: OnlineLog) -> int:
    """Judge each running shadow and canary once; how many events were recorded."""
    recorded = 0
    meta = EventMetadata(actor=f"worker:{GROUP}@{ctx.name}")
    for state in await runs.running():
        try:
            out = await ctx.bus.handle(EvaluateOnline(model_name=state.model_name, metadata=meta))
        except ConcurrencyConflict:
            continue  # another worker decided first; the next round sees its decision
        recorded += len(out)
        for r in out:
            log.info("online_decision", model=state.model_name, kind=type(r.event).__name__)
    return recorded


def evaluator(ctx: WorkerContext, runs: OnlineLog):
    """The background task: ``evaluate_once`` every second until stopped."""

    async def run(stop: asyncio.Event) -> None:
        while True:
            try:
                await evaluate_once(ctx, runs)
            except DomainError as exc:  # PostgreSQL away, a model deleted...: next round
                log.warning("online_evaluation_failed", error=str(exc)[:300])
            if await sleep_until_stopped(stop, EVALUATE_S):
                return

    return run
