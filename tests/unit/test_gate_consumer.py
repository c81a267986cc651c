"""The gate-evaluation group's entry routing and dead-letter hook, on fakes (no Redis)."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from consumers import gate_evaluation
from consumers.context import WorkerContext
from domain.gates.aggregate import ERRORED, EVALUATING, PASSED
from domain.gates.commands import GetGatePolicy
from domain.gates.handlers import gate_policy
from events.codec import encode_event
from events.jobs import EvaluationRecorded
from events.streams import EVAL_STREAM, GATES_STREAM, JOBS_STREAM
from tests.unit.wiring import GateFakes

pytestmark = pytest.mark.anyio


def entry(event_type: str, payload: dict) -> dict[bytes, bytes]:
    """A relayed stream entry's fields."""
    return {
        b"type": event_type.encode(),
        b"payload": msgspec.json.encode(payload),
        b"event_id": str(uuid.uuid4()).encode(),
        b"correlation_id": str(uuid.uuid4()).encode(),
    }


@pytest.fixture
def gp() -> GateFakes:
    """Fresh fakes per test."""
    return GateFakes()


def context(gp: GateFakes) -> WorkerContext:
    return WorkerContext(bus=gp.bus, name="w1")


async def test_entries_drive_a_gate_to_its_verdict(gp: GateFakes) -> None:
    ctx = context(gp)
    gate = await gp.request()
    await gate_evaluation.handle(
        ctx, GATES_STREAM, "1-0", entry("GateRequested", {"gate_id": gate.gate_id})
    )
    state = await gp.gate(gate.gate_id)
    assert state.status == EVALUATING and len(state.submitted) == 2
    for job_id in state.submitted:
        await gp.run_job(job_id)
        await gate_evaluation.handle(
            ctx, JOBS_STREAM, "2-0", entry("BatchJobCompleted", {"job_id": job_id})
        )
    state = await gp.gate(gate.gate_id)
    assert state.status == PASSED and state.decided_at is not None
    # Other entry types are acknowledged untouched.
    await gate_evaluation.handle(
        ctx, JOBS_STREAM, "3-0", entry("BatchShardCompleted", {"job_id": "x"})
    )


async def test_an_evaluation_starts_an_automatic_gate(gp: GateFakes) -> None:
    job = await gp.submit(model_version="v2")
    await gp.run_job(job.job_id)
    recorded = EvaluationRecorded(
        model_name="m", model_version="v2", job_id=job.job_id, dataset_id="mnist_250"
    )
    fields = {**entry("EvaluationRecorded", {}), b"payload": encode_event(recorded)}
    await gate_evaluation.handle(context(gp), EVAL_STREAM, "4-0", fields)
    gates = [r for r in gp.uow.db.log if r.stream_id.startswith("gate-")]
    assert len(gates) == 1 and gates[0].event.auto and gates[0].event.cause == job.job_id
    assert (await gate_policy(GetGatePolicy(model_name="m"), gp.gate_ports)).auto_gate


async def test_a_dead_lettered_entry_errors_its_gates(gp: GateFakes) -> None:
    ctx = context(gp)
    first = await gp.request()
    fields = entry("GateRequested", {"gate_id": first.gate_id})
    await gate_evaluation.dead_lettered(
        ctx, GATES_STREAM, "5-0", fields, "boom (failed 3 deliveries)"
    )
    state = await gp.gate(first.gate_id)
    assert state.status == ERRORED and "gave up on GateRequested: boom" in state.error
    second = await gp.request()
    started = await gp.start(second.gate_id)
    job_id = started.state.candidate_job_id
    fields = entry("BatchJobCompleted", {"job_id": job_id})
    await gate_evaluation.dead_lettered(ctx, JOBS_STREAM, "6-0", fields, "latency run crashed")
    assert (await gp.gate(second.gate_id)).status == ERRORED
