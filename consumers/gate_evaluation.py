"""The ``gate-evaluation`` group: runs regression gates from their events, never by polling.

It reads ``gates.events`` (GateRequested -> reuse or submit the evaluations;
GateEvaluationsRequested -> judge if both are in; GateEvaluated -> auto-promotion),
``jobs.events`` (a job completed, failed or was cancelled -> the gates waiting on it) and
``eval.events`` (EvaluationRecorded -> an automatic gate). Each entry: decode, call a handler.
"""

from __future__ import annotations

import msgspec
import structlog

from consumers.context import WorkerContext, delivery
from domain.errors import Conflict
from domain.gates.aggregate import ERRORED, FAILED, PASSED, UNDECIDED
from domain.gates.commands import (
    CheckGate,
    CheckGatesOfJob,
    FailGate,
    FailGatesOfJob,
    PromoteAfterGate,
    RequestAutomaticGate,
    StartGate,
)
from domain.gates.evaluation import GateResult
from events.jobs import EvaluationRecorded
from events.streams import EVAL_STREAM, GATES_STREAM, JOBS_STREAM
from observability.metrics import instruments

GROUP = "gate-evaluation"
STREAMS = [GATES_STREAM, JOBS_STREAM, EVAL_STREAM]
JOB_ENDS = (b"BatchJobCompleted", b"BatchJobFailed", b"BatchJobCancelled")
RESULTS = {PASSED: "pass", FAILED: "fail", UNDECIDED: "inconclusive", ERRORED: "error"}
log = structlog.get_logger(GROUP)


def report(result: GateResult) -> None:
    """Log and count a gate this entry finished."""
    gate = result.state
    if not result.changed or not gate.finished:
        return
    instruments().record_gate_verdict(RESULTS.get(gate.status or "", "error"))
    log.info(
        "gate_finished",
        gate_id=gate.gate_id,
        model_name=gate.model_name,
        candidate=gate.candidate_version,
        baseline=gate.baseline_version,
        verdict=gate.verdict,
        error=gate.error,
    )


async def handle(
    ctx: WorkerContext, stream: str, entry_id: str, fields: dict[bytes, bytes]
) -> None:
    """Route an entry to its handler; entries of other types are acknowledged untouched."""
    kind = fields.get(b"type")
    meta = ctx.metadata(GROUP, fields)
    if stream == GATES_STREAM:
        gate_id = str(msgspec.json.decode(fields[b"payload"])["gate_id"])
        if kind == b"GateRequested":
            report(await ctx.bus.handle(StartGate(gate_id=gate_id, metadata=meta)))
        elif kind == b"GateEvaluationsRequested":
            check = CheckGate(gate_id=gate_id, delivery=delivery(GROUP, fields), metadata=meta)
            report(await ctx.bus.handle(check))
        elif kind == b"GateEvaluated":
            try:
                promote = PromoteAfterGate(
                    gate_id=gate_id, delivery=delivery(GROUP, fields), metadata=meta
                )
                promoted = await ctx.bus.handle(promote)
            except Conflict as exc:  # the policy refused it: say so, do not retry forever
                log.warning("auto_promotion_refused", gate_id=gate_id, reason=str(exc))
                return
            if promoted is not None and promoted.changed:
                log.info(
                    "auto_promoted",
                    gate_id=gate_id,
                    model_name=promoted.state.model_name,
                    model_version=promoted.state.prod,
                )
    elif stream == JOBS_STREAM and kind in JOB_ENDS:
        job_id = str(msgspec.json.decode(fields[b"payload"])["job_id"])
        check = CheckGatesOfJob(job_id=job_id, delivery=delivery(GROUP, fields), metadata=meta)
        for result in await ctx.bus.handle(check):
            report(result)
    elif stream == EVAL_STREAM and kind == b"EvaluationRecorded":
        e = msgspec.json.decode(fields[b"payload"], type=EvaluationRecorded)
        cmd = RequestAutomaticGate(
            model_name=e.model_name,
            model_version=e.model_version,
            dataset_id=e.dataset_id,
            job_id=e.job_id,
            delivery=delivery(GROUP, fields),
            metadata=meta,
        )
        gate = await ctx.bus.handle(cmd)
        if gate is not None:
            log.info(
                "auto_gate_requested",
                gate_id=gate.gate_id,
                model_name=e.model_name,
                candidate=e.model_version,
                baseline=gate.baseline_version,
            )


async def dead_lettered(
    ctx: WorkerContext, stream: str, entry_id: str, fields: dict[bytes, bytes], reason: str
) -> None:
    """An entry that failed too often ends the gates it concerns as errored, with the reason."""
    try:
        payload = msgspec.json.decode(fields.get(b"payload", b"{}"))
    except msgspec.DecodeError:
        return
    meta = ctx.metadata(GROUP, fields)
    why = f"the gate-evaluation group gave up on {fields.get(b'type', b'?').decode()}: {reason}"
    if stream == GATES_STREAM and payload.get("gate_id"):
        gate_id = str(payload["gate_id"])
        results = [await ctx.bus.handle(FailGate(gate_id=gate_id, reason=why, metadata=meta))]
    elif stream == JOBS_STREAM and payload.get("job_id"):
        job_id = str(payload["job_id"])
        results = await ctx.bus.handle(FailGatesOfJob(job_id=job_id, reason=why, metadata=meta))
    else:
        return
    for result in results:
        report(result)
