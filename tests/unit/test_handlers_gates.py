"""Gate use-case handlers against in-memory fakes of their ports (no PostgreSQL, no Redis)."""

from __future__ import annotations

import uuid

import pytest

from domain.errors import Conflict, InvalidInput, NotFound
from domain.gates.aggregate import ERRORED, EVALUATING, FAILED, PASSED, REQUESTED, evaluation_job_id
from domain.gates.evaluation import EVALUATION_BATCH
from domain.gates.handlers import set_gate_policy
from domain.jobs.commands import CancelBatchJob
from domain.jobs.handlers import cancel_batch_job
from domain.registry.commands import PromoteModelVersion, SetGatePolicy
from domain.registry.handlers import promote_model_version
from events.base import EventMetadata
from events.gates import (
    GateErrored,
    GateEvaluated,
    GateEvaluationsRequested,
    GatePolicy,
    GateRequested,
    GateThresholds,
)
from events.registry import GatePolicySet, ModelVersionPromoted
from tests.unit.wiring import FAKE_MARGINS, GateFakes

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="tester")


@pytest.fixture
def gp() -> GateFakes:
    """Fresh fakes per test: v2 makes the same mistakes as v1."""
    return GateFakes()


async def evaluated(gp: GateFakes, version: str, dataset: str = "mnist_250") -> str:
    """Run a batch evaluation of ``version`` of m to the end; its job id."""
    job = await gp.submit(model_version=version, dataset_id=dataset)
    await gp.run_job(job.job_id)
    return job.job_id


async def through_verdict(gp: GateFakes, gate_id: str):
    """Start a gate, run the jobs it submitted, deliver their completions; the final state."""
    started = await gp.start(gate_id)
    await gp.check(gate_id)  # GateEvaluationsRequested arrives first: nothing is in yet
    for job_id in started.state.submitted:
        await gp.run_job(job_id)
        await gp.job_finished(job_id)
    return await gp.gate(gate_id)


async def test_request_records_the_comparison_with_the_models_thresholds(gp: GateFakes) -> None:
    policy = GatePolicy(thresholds=GateThresholds(max_accuracy_drop=0.02))
    await set_gate_policy(
        SetGatePolicy(model_name="m", policy=policy, reason="looser", metadata=META), gp.gate_ports
    )
    state = await gp.request(reason="before release")
    [event] = gp.gate_events(state.gate_id)
    assert isinstance(event, GateRequested) and state.status == REQUESTED
    assert (event.candidate_version, event.baseline_version, event.dataset_id) == (
        "v2",
        "v1",
        "mnist_250",
    )
    assert event.thresholds.max_accuracy_drop == 0.02 and event.reason == "before release"
    assert state.requested_by == "tester" and not event.auto


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"model_name": "ghost"}, NotFound, "unknown model 'ghost'"),
        ({"candidate": "v9"}, NotFound, r"no version 'v9' \(known: v1, v2\)"),
        ({"baseline": "v0"}, NotFound, "no version 'v0'"),
        ({"candidate": "../v1"}, InvalidInput, "invalid model version"),
        ({"model_name": "../etc"}, InvalidInput, "invalid model name"),
        ({"dataset_id": "cifar_10"}, InvalidInput, r"unknown dataset 'cifar_10' \(known:"),
        ({"dataset_id": ""}, InvalidInput, "dataset_id must be a non-empty string"),
        ({"dataset_id": "mnist\x00"}, InvalidInput, "NUL character"),
        ({"dataset_id": None}, InvalidInput, "neither v2 nor v1 of m has been evaluated"),
    ],
)
async def test_request_refuses_bad_input_precisely(
    gp: GateFakes, kwargs: dict, error: type, text: str
) -> None:
    before = len(gp.uow.db.log)
    with pytest.raises(error, match=text):
        await gp.request(**kwargs)
    assert len(gp.uow.db.log) == before


async def test_request_without_dataset_uses_one_both_were_evaluated_on(gp: GateFakes) -> None:
    await evaluated(gp, "v1", "tiny_5")
    await evaluated(gp, "v2", "mnist_250")
    with pytest.raises(InvalidInput, match="evaluated on different datasets only") as err:
        await gp.request(dataset_id=None)
    assert "v2: mnist_250; v1: tiny_5" in str(err.value) and "dataset_id" in str(err.value)
    await evaluated(gp, "v1", "mnist_250")
    state = await gp.request(dataset_id=None)
    assert state.dataset_id == "mnist_250"  # the larger of the shared ones


async def test_start_submits_the_missing_evaluations_once_with_gate_ids(gp: GateFakes) -> None:
    gate = await gp.request()
    result = await gp.start(gate.gate_id)
    assert result.changed and result.state.status == EVALUATING
    want = {evaluation_job_id(gate.gate_id, v) for v in ("v1", "v2")}
    assert set(result.state.submitted) == want
    for job_id in want:
        job = await gp.uow().jobs.load(job_id)
        assert job.status == "queued" and job.batch_size == EVALUATION_BATCH
    [recorded] = [
        e for e in gp.gate_events(gate.gate_id) if isinstance(e, GateEvaluationsRequested)
    ]
    assert recorded.candidate_job_id == evaluation_job_id(gate.gate_id, "v2")
    again = await gp.start(gate.gate_id)  # a redelivered GateRequested
    assert not again.changed and len(gp.gate_events(gate.gate_id)) == 2
    assert sum(r.stream_id.startswith("job-") for r in gp.uow.db.log) == 2


async def test_start_reuses_recorded_evaluations(gp: GateFakes) -> None:
    baseline_job = await evaluated(gp, "v1")
    gate = await gp.request()
    result = await gp.start(gate.gate_id)
    assert result.state.baseline_job_id == baseline_job
    assert result.state.submitted == [evaluation_job_id(gate.gate_id, "v2")]


async def test_start_errors_when_the_dataset_is_gone(gp: GateFakes) -> None:
    gate = await gp.request()
    del gp.datasets.datasets["mnist_250"]
    result = await gp.start(gate.gate_id)
    assert result.state.status == ERRORED and "dataset 'mnist_250' cannot be read" in (
        result.state.error or ""
    )
    assert isinstance(gp.gate_events(gate.gate_id)[-1], GateErrored)


async def test_a_gate_passes_once_both_jobs_complete_and_judges_once(gp: GateFakes) -> None:
    gate = await gp.request()
    state = await through_verdict(gp, gate.gate_id)
    assert state.status == PASSED and state.verdict == "PASS"
    [verdict] = [e for e in gp.gate_events(gate.gate_id) if isinstance(e, GateEvaluated)]
    accuracy = next(c for c in verdict.checks if c.name == "accuracy")
    assert accuracy.delta == 0 and accuracy.p_value == 1.0
    assert verdict.accuracy.images == 250 and verdict.latency.batches == 20
    assert gp.latency.calls == [("v1", "v2", "mnist_250")]
    # Every event delivered again, in any order: no second verdict, no second latency run.
    for job_id in state.submitted:
        assert (await gp.job_finished(job_id)) == []
    assert not (await gp.check(gate.gate_id)).changed
    assert len(gp.latency.calls) == 1
    assert sum(isinstance(e, GateEvaluated) for e in gp.gate_events(gate.gate_id)) == 1


async def test_a_much_worse_candidate_fails_with_a_significant_drop() -> None:
    gp = GateFakes(wrong={"v2": set(range(0, 250, 5))})  # v2 wrong on 50 of 250 images
    gate = await gp.request()
    state = await through_verdict(gp, gate.gate_id)
    assert state.status == FAILED
    accuracy = next(c for c in state.checks if c.name == "accuracy")
    assert accuracy.verdict == "FAIL" and accuracy.delta == pytest.approx(-0.2)
    assert accuracy.p_value < 1e-9


async def test_the_same_version_against_itself_passes_on_one_job(gp: GateFakes) -> None:
    gate = await gp.request(candidate="v1", baseline="v1")
    state = await through_verdict(gp, gate.gate_id)
    assert state.status == PASSED and state.candidate_job_id == state.baseline_job_id
    assert len(state.submitted) == 1


async def test_a_failed_or_cancelled_evaluation_ends_the_gate_as_errored(gp: GateFakes) -> None:
    gate = await gp.request()
    started = await gp.start(gate.gate_id)
    cancelled = started.state.candidate_job_id
    await cancel_batch_job(
        CancelBatchJob(job_id=cancelled, reason="operator stopped it", metadata=META), gp.ports
    )
    [result] = await gp.job_finished(cancelled)
    assert result.changed and result.state.status == ERRORED
    assert f"the evaluation job {cancelled} of v2 cancelled" in result.state.error
    assert "operator stopped it" in result.state.error
    assert await gp.job_finished(started.state.baseline_job_id) == []  # no longer waiting


async def test_a_latency_run_that_cannot_run_errors_the_gate(gp: GateFakes) -> None:
    gp.latency.error = NotFound("an artifact file is missing: /x/model.pt")
    state = await through_verdict(gp, (await gp.request()).gate_id)
    assert state.status == ERRORED and "paired latency run failed" in state.error


async def test_auto_gate_after_a_staging_evaluation_once(gp: GateFakes) -> None:
    job_id = await evaluated(gp, "v2")
    delivery = uuid.uuid4()
    args = dict(model_name="m", model_version="v2", dataset_id="mnist_250", job_id=job_id)
    gate = await gp.auto_gate(event_id=delivery, **args)
    assert gate is not None and gate.auto and gate.cause == job_id
    assert (gate.candidate_version, gate.baseline_version) == ("v2", "v1")
    assert await gp.auto_gate(event_id=delivery, **args) is None  # redelivered
    assert await gp.auto_gate(event_id=uuid.uuid4(), **args) is None  # same job, other entry
    started = await gp.start(gate.gate_id)
    assert started.state.candidate_job_id == job_id  # the evaluation that caused it


async def test_no_auto_gate_for_prod_gate_jobs_or_when_off(gp: GateFakes) -> None:
    prod_job = await evaluated(gp, "v1")
    args = dict(model_name="m", dataset_id="mnist_250")
    assert (
        await gp.auto_gate(model_version="v1", job_id=prod_job, event_id=uuid.uuid4(), **args)
        is None
    )
    gate = await gp.request()
    started = await gp.start(gate.gate_id)
    gate_job = evaluation_job_id(gate.gate_id, "v2")
    await gp.run_job(gate_job)
    assert started.state.submitted and gate_job in started.state.submitted
    assert (
        await gp.auto_gate(model_version="v2", job_id=gate_job, event_id=uuid.uuid4(), **args)
        is None
    )
    await set_gate_policy(
        SetGatePolicy(
            model_name="m",
            policy=GatePolicy(auto_gate=False, thresholds=FAKE_MARGINS),
            reason=None,
            metadata=META,
        ),
        gp.gate_ports,
    )
    other = await evaluated(gp, "v2", "tiny_5")
    assert (
        await gp.auto_gate(model_version="v2", job_id=other, event_id=uuid.uuid4(), **args) is None
    )


async def test_auto_promote_on_pass_names_the_gate(gp: GateFakes) -> None:
    await set_gate_policy(
        SetGatePolicy(
            model_name="m",
            policy=GatePolicy(auto_promote=True, require_gate=True, thresholds=FAKE_MARGINS),
            reason=None,
            metadata=META,
        ),
        gp.gate_ports,
    )
    gate = await gp.request()
    await through_verdict(gp, gate.gate_id)
    delivery = uuid.uuid4()
    result = await gp.auto_promote(gate.gate_id, event_id=delivery)
    assert result is not None and result.state.prod == "v2"
    [promoted] = gp.model_events(ModelVersionPromoted)[-1:]
    assert promoted.gate_id == gate.gate_id and not promoted.forced
    again = await gp.auto_promote(gate.gate_id, event_id=delivery)
    assert again is None


async def test_no_auto_promote_without_the_policy_or_on_fail() -> None:
    gp = GateFakes(wrong={"v2": set(range(0, 250, 5))})
    gate = await gp.request()
    await through_verdict(gp, gate.gate_id)
    await set_gate_policy(
        SetGatePolicy(
            model_name="m",
            policy=GatePolicy(auto_promote=True, thresholds=FAKE_MARGINS),
            reason=None,
            metadata=META,
        ),
        gp.gate_ports,
    )
    assert await gp.auto_promote(gate.gate_id, event_id=uuid.uuid4()) is None


async def test_required_gate_refuses_then_a_fresh_pass_clears(gp: GateFakes) -> None:
    await set_gate_policy(
        SetGatePolicy(
            model_name="m",
            policy=GatePolicy(require_gate=True, max_gate_age_s=3600, thresholds=FAKE_MARGINS),
            reason=None,
            metadata=META,
        ),
        gp.gate_ports,
    )
    promote = PromoteModelVersion(model_name="m", model_version="v2", metadata=META)
    with pytest.raises(Conflict, match=r"run `just gate m v2 v1`") as err:
        await promote_model_version(promote, gp.registry_ports)
    assert "there is no gate of v2" in str(err.value)
    gate = await gp.request()
    await through_verdict(gp, gate.gate_id)
    gp.clock.advance(7200)  # stale
    with pytest.raises(Conflict, match="old"):
        await promote_model_version(promote, gp.registry_ports)
    fresh = await gp.request()
    await through_verdict(gp, fresh.gate_id)
    result = await promote_model_version(promote, gp.registry_ports)
    assert result.state.prod == "v2" and result.recorded[0].event.gate_id == fresh.gate_id


async def test_a_pass_against_another_baseline_does_not_count(gp: GateFakes) -> None:
    await set_gate_policy(
        SetGatePolicy(
            model_name="m",
            policy=GatePolicy(require_gate=True, thresholds=FAKE_MARGINS),
            reason=None,
            metadata=META,
        ),
        gp.gate_ports,
    )
    gate = await gp.request(candidate="v2", baseline="v2")  # v2 against itself, not prod v1
    assert (await through_verdict(gp, gate.gate_id)).status == PASSED
    with pytest.raises(Conflict, match="not to the current prod v1"):
        await promote_model_version(
            PromoteModelVersion(model_name="m", model_version="v2", metadata=META),
            gp.registry_ports,
        )


async def test_a_forced_promotion_records_its_reason(gp: GateFakes) -> None:
    await set_gate_policy(
        SetGatePolicy(
            model_name="m",
            policy=GatePolicy(require_gate=True, thresholds=FAKE_MARGINS),
            reason=None,
            metadata=META,
        ),
        gp.gate_ports,
    )
    with pytest.raises(InvalidInput, match="needs a reason"):
        await promote_model_version(
            PromoteModelVersion(model_name="m", model_version="v2", force=True, metadata=META),
            gp.registry_ports,
        )
    cmd = PromoteModelVersion(
        model_name="m",
        model_version="v2",
        force=True,
        reason="hotfix",
        metadata=EventMetadata(actor="alice"),
    )
    result = await promote_model_version(cmd, gp.registry_ports)
    event = result.recorded[0].event
    assert (
        event.forced
        and event.force_reason == "hotfix"
        and result.recorded[0].metadata.actor == "alice"
    )


async def test_set_gate_policy_records_changes_only(gp: GateFakes) -> None:
    policy = GatePolicy(require_gate=True, thresholds=FAKE_MARGINS)
    first = await set_gate_policy(
        SetGatePolicy(model_name="m", policy=policy, reason="release", metadata=META), gp.gate_ports
    )
    assert first.changed and first.state.policy == policy
    assert not (
        await set_gate_policy(
            SetGatePolicy(model_name="m", policy=policy, reason=None, metadata=META), gp.gate_ports
        )
    ).changed
    assert len(gp.model_events(GatePolicySet)) == 2  # the fakes' own margins, then this one
    with pytest.raises(NotFound, match="unknown model"):
        await set_gate_policy(
            SetGatePolicy(model_name="ghost", policy=policy, reason=None, metadata=META),
            gp.gate_ports,
        )
    bad = GatePolicy(thresholds=GateThresholds(max_accuracy_drop=2.0))
    with pytest.raises(InvalidInput, match="max_accuracy_drop must be between 0 and 1"):
        await set_gate_policy(
            SetGatePolicy(model_name="m", policy=bad, reason=None, metadata=META), gp.gate_ports
        )
