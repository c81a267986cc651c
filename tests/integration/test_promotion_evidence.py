"""Issue 21 item 7 on PostgreSQL: the gate store gives the promotion rule each gate's dataset and
image count, so a PASS on 10 images does not erase a FAIL on 100 (the exploit, refused), and the
pending promotion requests are listed from the log. Verdicts are decided directly (no worker)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from domain.errors import Conflict
from domain.gates.aggregate import EvaluateGate, RecordGateEvaluations, evaluation_job_id
from domain.gates.commands import RequestGate
from domain.gates.evaluation import _decide
from domain.registry.commands import (
    PromoteModelVersion,
    RegisterModelVersion,
    SetGatePolicy,
)
from events.base import EventMetadata
from events.gates import GatePolicy

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="tester")


async def _verdict(p, name: str, dataset: str, images: int, wrong: int) -> str:
    """A gate of v2 against v1 on ``dataset``, decided with v2 wrong on ``wrong`` images."""
    gate = await p.bus.handle(
        RequestGate(
            model_name=name,
            candidate_version="v2",
            baseline_version="v1",
            dataset_id=dataset,
            metadata=META,
        )
    )
    cand, base = evaluation_job_id(gate.gate_id, "v2"), str(uuid.uuid4())
    jobs = RecordGateEvaluations(
        gate_id=gate.gate_id, candidate_job_id=cand, baseline_job_id=base, submitted=[cand]
    )
    await _decide(p.uow, gate.gate_id, jobs, META)
    labels = [i % 10 for i in range(images)]
    worse = [(y + 1) % 10 if i < wrong else y for i, y in enumerate(labels)]
    verdict = EvaluateGate(
        gate_id=gate.gate_id,
        baseline_labels=labels,
        candidate_labels=labels,
        baseline_predictions=labels,
        candidate_predictions=worse,
        baseline_latency_ms=[5.0] * 10,
        candidate_latency_ms=[5.0] * 10,
        latency_batch_size=64,
    )
    await _decide(p.uow, gate.gate_id, verdict, META)
    return gate.gate_id


async def test_a_small_pass_does_not_erase_a_large_fail(platform, model_name, state_dict_file):
    p = platform
    for i, version in enumerate(("v1", "v2")):
        await p.bus.handle(
            RegisterModelVersion(
                model_name=model_name,
                model_version=version,
                source=str(state_dict_file(f"{i}.pt", i)),
                metadata=META,
            )
        )
    await p.bus.handle(
        PromoteModelVersion(model_name=model_name, model_version="v1", metadata=META)
    )
    policy = GatePolicy(require_gate=True)
    await p.bus.handle(SetGatePolicy(model_name=model_name, policy=policy, metadata=META))

    failed = await _verdict(p, model_name, "fashion_mnist_2000", 2000, wrong=400)
    passed = await _verdict(p, model_name, "fashion_mnist_500", 500, wrong=0)
    async with p.uow() as tx:
        outcomes = {o.gate_id: o for o in await tx.gates.outcomes(model_name, "v2")}
    assert (outcomes[failed].verdict, outcomes[failed].dataset_id, outcomes[failed].images) == (
        "FAIL",
        "fashion_mnist_2000",
        2000,
    )
    assert (outcomes[passed].verdict, outcomes[passed].images) == ("PASS", 500)

    promote = PromoteModelVersion(model_name=model_name, model_version="v2", metadata=META)
    with pytest.raises(Conflict, match=f"does not erase the FAIL {failed}"):
        await p.bus.handle(promote)
    assert await p.queries.require_prod(model_name) == "v1"

    # Four eyes, on the same log: a forced request is listed until another actor approves it.
    four = GatePolicy(require_gate=True, approvals_required=2)
    await p.bus.handle(SetGatePolicy(model_name=model_name, policy=four, metadata=META))
    forced = PromoteModelVersion(
        model_name=model_name,
        model_version="v2",
        force=True,
        reason="accepted regression",
        role="admin",
        metadata=EventMetadata(actor="alice"),
    )
    await p.bus.handle(forced)
    listed = await p.gate_queries.pending_promotions(datetime.now(UTC))
    mine = [r for r in listed if r.model_name == model_name]
    assert [(r.model_version, r.requested_by, r.forced) for r in mine] == [("v2", "alice", True)]
    assert await p.queries.require_prod(model_name) == "v1"
