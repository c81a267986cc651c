"""The PostgreSQL gate store: its lookups on the gates projection, and the projection rebuilt
from the log (and audited) row for row. No worker: the commands are decided directly."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from domain.gates.aggregate import EvaluateGate, RecordGateEvaluations, evaluation_job_id
from domain.gates.commands import FailGate, RequestGate
from domain.gates.evaluation import _decide
from domain.registry.commands import RegisterModelVersion
from events.base import EventMetadata
from storage.audit.projections import check_projections
from storage.projections import rebuild_projections
from storage.tables import gates

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="tester")


async def _gate(p, name: str, candidate: str, baseline: str) -> str:
    state = await p.bus.handle(
        RequestGate(
            model_name=name,
            candidate_version=candidate,
            baseline_version=baseline,
            dataset_id="fashion_mnist_100",
            metadata=META,
        )
    )
    return state.gate_id


async def test_lookups_rebuild_and_audit(platform, model_name, state_dict_file) -> None:
    p = platform
    for i, version in enumerate(("v1", "v2")):
        await p.bus.handle(
            RegisterModelVersion(
                model_name=model_name,
                model_version=version,
                source=str(state_dict_file(f"{i}.pt", i)),
                tags={},
                metadata=META,
            )
        )
    passed, errored, waiting = [await _gate(p, model_name, "v2", "v1") for _ in range(3)]
    cand, base = evaluation_job_id(passed, "v2"), str(uuid.uuid4())  # a job nobody else names
    await _decide(
        p.uow,
        passed,
        RecordGateEvaluations(
            gate_id=passed,
            candidate_job_id=cand,
            baseline_job_id=base,
            submitted=[cand],
        ),
        META,
    )
    labels = [i % 10 for i in range(400)]
    verdict = EvaluateGate(
        gate_id=passed,
        baseline_labels=labels,
        candidate_labels=labels,
        baseline_predictions=labels,
        candidate_predictions=labels,
        baseline_latency_ms=[5.0 + i % 3 for i in range(10)],
        candidate_latency_ms=[5.0 + i % 3 for i in range(10)],
        latency_batch_size=64,
    )
    assert (await _decide(p.uow, passed, verdict, META)).state.verdict == "PASS"
    await p.bus.handle(FailGate(gate_id=errored, reason="the evaluation job failed", metadata=META))
    w_cand = evaluation_job_id(waiting, "v2")
    await _decide(
        p.uow,
        waiting,
        RecordGateEvaluations(
            gate_id=waiting,
            candidate_job_id=w_cand,
            baseline_job_id=base,
            submitted=[w_cand],
        ),
        META,
    )

    async with p.uow() as tx:
        outcomes = await tx.gates.outcomes(model_name, "v2")
        assert {o.gate_id: o.verdict for o in outcomes} == {passed: "PASS", errored: "ERRORED"}
        assert await tx.gates.outcomes(model_name, "v1") == []
        assert await tx.gates.waiting_on(base) == [waiting]  # the finished gate waits no more
        assert await tx.gates.waiting_on(w_cand) == [waiting]
        assert await tx.gates.submitted_by(cand) == passed
        assert await tx.gates.submitted_by(base) is None  # compared, but not submitted by a gate

    view = await p.gate_queries.get(passed)
    assert view.checks[0].name == "accuracy" and view.latency.batches == 10
    q = select(gates).where(gates.c.model_name == model_name).order_by(gates.c.gate_id)
    async with p.engine.connect() as conn:
        before = (await conn.execute(q)).all()
    await rebuild_projections(p.engine)
    async with p.engine.connect() as conn:
        after = (await conn.execute(q)).all()
        findings, counts = await check_projections(conn)
    assert after == before and len(after) == 3
    assert [f for f in findings if "gates" in f.problem] == [] and counts["gates"] >= 3
