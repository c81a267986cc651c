"""Batch-job use-case handlers against in-memory fakes of their ports (no PostgreSQL, no Redis)."""

from __future__ import annotations

import uuid
from typing import cast

import pytest

from domain.errors import Conflict, InvalidInput, NotFound
from domain.jobs.aggregate import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, JobState
from domain.jobs.commands import CancelBatchJob, FailBatchJob, ReplanLostShards
from domain.jobs.handlers import cancel_batch_job, fail_batch_job
from domain.jobs.ports import ShardPlans
from domain.jobs.store import ShardResult
from domain.jobs.work import replan_lost_shards
from domain.registry.state import VersionState
from events.base import EventMetadata
from events.jobs import (
    BatchJobCancelled,
    BatchJobCompleted,
    BatchJobFailed,
    BatchJobPlanned,
    BatchJobSubmitted,
    BatchShardCompleted,
    EvaluationRecorded,
)
from tests.unit.fakes import FakeRepository
from tests.unit.wiring import NAMES, JobFakes

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="tester")


@pytest.fixture
def jobs() -> JobFakes:
    """Fresh fakes per test."""
    return JobFakes()


async def test_submit_records_the_job_on_the_prod_version(jobs: JobFakes) -> None:
    state = await jobs.submit()
    uuid.UUID(state.job_id)
    [event] = jobs.job_events(state.job_id)
    assert isinstance(event, BatchJobSubmitted)
    assert (event.model_version, event.total, event.batch_size, event.shard_size) == (
        "v1",
        250,
        32,
        100,
    )
    assert state.status == QUEUED and state.planned_shards == 3 and state.submitted_by == "tester"


async def test_submit_takes_an_explicit_version(jobs: JobFakes) -> None:
    state = await jobs.submit(model_version="v2")
    assert jobs.job_events(state.job_id)[0].model_version == "v2"


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"batch_size": 0}, InvalidInput, "config.batch_size must be an integer"),
        ({"batch_size": 4097}, InvalidInput, "config.batch_size"),
        ({"batch_size": True}, InvalidInput, "config.batch_size"),
        ({"batch_size": "8"}, InvalidInput, "config.batch_size"),
        ({"model_name": "Nope!"}, InvalidInput, "invalid model name"),
        ({"model_name": "ghost"}, NotFound, "unknown model 'ghost'"),
        ({"model_version": "v9"}, NotFound, r"no version 'v9' \(known: v1, v2\)"),
        ({"model_version": "../v1"}, InvalidInput, "invalid model version"),
        ({"model_name": "n"}, Conflict, "has no prod version; pass model_version"),
        ({"dataset_id": "cifar_10"}, InvalidInput, r"unknown dataset 'cifar_10' \(known: mnist"),
        ({"dataset_id": "mnist\x00"}, InvalidInput, "NUL character"),
        ({"shard_size": 0}, InvalidInput, "shard_size must be between 1 and 100000"),
    ],
)
async def test_submit_refuses_bad_input_and_records_nothing(
    jobs: JobFakes, kwargs: dict, error: type, text: str
) -> None:
    before = len(jobs.uow.db.log)
    with pytest.raises(error, match=text):
        await jobs.submit(**kwargs)
    assert len(jobs.uow.db.log) == before


async def test_cancel_stops_a_queued_job_once(jobs: JobFakes) -> None:
    job = await jobs.submit()
    state = await cancel_batch_job(
        CancelBatchJob(job_id=job.job_id, reason="wrong dataset", metadata=META), jobs.ports
    )
    assert state.status == CANCELLED and state.error == "cancelled: wrong dataset"
    assert isinstance(jobs.job_events(job.job_id)[-1], BatchJobCancelled)
    await cancel_batch_job(
        CancelBatchJob(job_id=job.job_id, reason=None, metadata=META), jobs.ports
    )
    assert len(jobs.job_events(job.job_id)) == 2


async def test_cancel_refuses_unknown_and_finished_jobs(jobs: JobFakes) -> None:
    with pytest.raises(NotFound, match="job ids are UUIDs"):
        await cancel_batch_job(
            CancelBatchJob(job_id="not-a-uuid", reason=None, metadata=META), jobs.ports
        )
    with pytest.raises(NotFound, match="unknown job"):
        await cancel_batch_job(
            CancelBatchJob(job_id=str(uuid.uuid4()), reason=None, metadata=META), jobs.ports
        )
    job = await jobs.submit()
    await fail_batch_job(FailBatchJob(job_id=job.job_id, reason="boom", metadata=META), jobs.ports)
    with pytest.raises(Conflict, match="already failed"):
        await cancel_batch_job(
            CancelBatchJob(job_id=job.job_id, reason=None, metadata=META), jobs.ports
        )


async def test_plan_dispatches_every_shard_once_per_event(jobs: JobFakes) -> None:
    job = await jobs.submit()
    delivery = uuid.uuid4()
    outcome = await jobs.plan(job.job_id, delivery)
    assert outcome.changed and outcome.state.status == RUNNING and outcome.state.shards == 3
    assert jobs.queue.shards(job.job_id) == [0, 1, 2]
    assert isinstance(jobs.job_events(job.job_id)[-1], BatchJobPlanned)
    assert ("batch-inference", delivery) in jobs.uow.db.processed  # with the plan, atomically
    again = await jobs.plan(job.job_id, delivery)  # a redelivery of the same entry
    later = await jobs.plan(job.job_id)  # another delivery of a planned job
    assert not again.changed and not later.changed
    assert jobs.queue.shards(job.job_id) == [0, 1, 2]
    assert sum(isinstance(e, BatchJobPlanned) for e in jobs.job_events(job.job_id)) == 1


async def test_plan_skips_a_cancelled_job(jobs: JobFakes) -> None:
    job = await jobs.submit()
    await cancel_batch_job(
        CancelBatchJob(job_id=job.job_id, reason=None, metadata=META), jobs.ports
    )
    outcome = await jobs.plan(job.job_id)
    assert not outcome.changed and jobs.queue.dispatches == []


async def test_evaluate_shard_stores_its_slice_and_records_it_once(jobs: JobFakes) -> None:
    job = await jobs.submit()
    await jobs.plan(job.job_id)
    outcome = await jobs.shard(job.job_id, 2, worker="w7")
    assert outcome.changed and outcome.state.done_shards == {2}
    row = jobs.uow.db.shard_results[(job.job_id, 2)]
    assert (row.start, row.stop, row.worker, row.batch_sizes) == (200, 250, "w7", [32, 18])
    assert row.labels == [i % 10 for i in range(200, 250)] and row.predictions[49] != row.labels[49]
    event = jobs.job_events(job.job_id)[-1]
    assert isinstance(event, BatchShardCompleted) and (event.shard, event.images) == (2, 50)
    assert jobs.evaluator.calls == [("m", "v1", "mnist_250", 200, 250, 32)]
    repeat = await jobs.shard(job.job_id, 2)
    assert not repeat.changed and len(jobs.evaluator.calls) == 1
    assert sum(isinstance(e, BatchShardCompleted) for e in jobs.job_events(job.job_id)) == 1


async def test_a_worker_folds_a_jobs_and_its_models_streams_once(
    jobs: JobFakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = await jobs.submit()
    await jobs.plan(job.job_id)
    loads: list[str] = []
    load = FakeRepository.load

    async def counted(self, aggregate_id: str):
        loads.append(aggregate_id)
        return await load(self, aggregate_id)

    monkeypatch.setattr(FakeRepository, "load", counted)
    await jobs.shard(job.job_id, 0)
    assert loads.count("m") == 1 and loads.count(job.job_id) == 2
    loads.clear()
    outcome = await jobs.shard(job.job_id, 1)
    assert outcome.changed and outcome.state.done_shards == {0, 1}
    assert loads == [job.job_id]  # only the save's load: the plan and the version are known
    assert [c[3:5] for c in jobs.evaluator.calls] == [(0, 100), (100, 200)]


async def test_a_remembered_plan_still_sees_the_job_cancelled(jobs: JobFakes) -> None:
    job = await jobs.submit()
    await jobs.plan(job.job_id)
    assert (await jobs.shard(job.job_id, 0)).changed
    await cancel_batch_job(
        CancelBatchJob(job_id=job.job_id, reason=None, metadata=META), jobs.ports
    )
    outcome = await jobs.shard(job.job_id, 1)
    assert not outcome.changed and outcome.state.status == CANCELLED
    assert len(jobs.evaluator.calls) == 1


def test_shard_plans_keep_the_most_recently_used() -> None:
    plans = ShardPlans(size=2)
    a, b, c = (JobState(job_id=j) for j in "abc")
    version = cast(VersionState, object())  # the plans only keep it
    plans.remember(a, version)
    plans.remember(b, version)
    assert plans.get("a") is not None  # a is now the most recent
    plans.remember(c, version)
    assert plans.get("b") is None and plans.get("a") and plans.get("c")


async def test_evaluate_shard_skips_inactive_and_unknown_jobs(jobs: JobFakes) -> None:
    job = await jobs.submit()
    await jobs.plan(job.job_id)
    await cancel_batch_job(
        CancelBatchJob(job_id=job.job_id, reason=None, metadata=META), jobs.ports
    )
    assert not (await jobs.shard(job.job_id, 0)).changed
    assert not (await jobs.shard(str(uuid.uuid4()), 0)).changed
    assert jobs.evaluator.calls == [] and jobs.uow.db.shard_results == {}


async def test_evaluate_shard_refuses_a_shard_outside_the_plan(jobs: JobFakes) -> None:
    job = await jobs.submit()
    with pytest.raises(InvalidInput, match="has no shard 3"):
        await jobs.shard(job.job_id, 3)
    assert jobs.evaluator.calls == []


async def test_evaluate_shard_loses_gracefully_to_a_faster_worker(jobs: JobFakes) -> None:
    job = await jobs.submit()
    evaluate = jobs.evaluator.evaluate

    async def slow_evaluate(version, dataset_id, start, stop, batch_size):
        answer = await evaluate(version, dataset_id, start, stop, batch_size)
        # Meanwhile another worker stored and committed the same shard.
        jobs.uow.db.shard_results[(job.job_id, 0)] = ShardResult(
            job_id=job.job_id,
            shard=0,
            start=start,
            stop=stop,
            predictions=answer[0],
            labels=answer[1],
            batch_latencies_ms=answer[2],
            batch_sizes=answer[3],
            worker="w2",
        )
        return answer

    jobs.evaluator.evaluate = slow_evaluate
    outcome = await jobs.shard(job.job_id, 0)
    assert not outcome.changed and jobs.uow.db.shard_results[(job.job_id, 0)].worker == "w2"
    assert not any(isinstance(e, BatchShardCompleted) for e in jobs.job_events(job.job_id))


async def test_aggregate_waits_for_every_shard_then_records_once(jobs: JobFakes) -> None:
    job = await jobs.submit()
    await jobs.plan(job.job_id)
    for shard in (0, 1):
        await jobs.shard(job.job_id, shard)
        assert not (await jobs.aggregate(job.job_id)).changed
    await jobs.shard(job.job_id, 2)
    jobs.clock.advance(5)
    last = uuid.uuid4()
    outcome = await jobs.aggregate(job.job_id, last)
    assert outcome.changed and outcome.state.status == SUCCEEDED
    [completed] = [e for e in jobs.job_events(job.job_id) if isinstance(e, BatchJobCompleted)]
    assert completed.metrics["accuracy"] == round(247 / 250, 6) and completed.duration_s == 5.0
    assert completed.metrics["images"] == 250 and completed.metrics["batches"] == 10
    assert [p["class"] for p in completed.metrics["per_class"]] == NAMES
    [recorded] = jobs.model_events(EvaluationRecorded)
    assert (recorded.model_version, recorded.job_id, recorded.dataset_id) == (
        "v1",
        job.job_id,
        "mnist_250",
    )
    assert "per_class" not in recorded.metrics and set(recorded.metrics["f1_per_class"]) == set(
        NAMES
    )
    assert ("metric-aggregation", last) in jobs.uow.db.processed
    assert not (await jobs.aggregate(job.job_id, last)).changed
    assert not (await jobs.aggregate(job.job_id)).changed
    assert len(jobs.model_events(EvaluationRecorded)) == 1
    assert sum(isinstance(e, BatchJobCompleted) for e in jobs.job_events(job.job_id)) == 1


async def test_aggregate_completes_a_job_whose_shards_beat_the_plan(jobs: JobFakes) -> None:
    job = await jobs.submit(dataset_id="tiny_5", model_version="v2")
    await jobs.shard(job.job_id, 0)  # the only shard lands before BatchJobPlanned
    assert not (await jobs.aggregate(job.job_id)).changed
    await jobs.plan(job.job_id)
    outcome = await jobs.aggregate(job.job_id)  # triggered by BatchJobPlanned
    assert outcome.changed and outcome.state.metrics["images"] == 5
    assert jobs.model_events(EvaluationRecorded)[0].model_version == "v2"


async def test_fail_marks_an_active_job_failed_once(jobs: JobFakes) -> None:
    job = await jobs.submit()
    cmd = FailBatchJob(job_id=job.job_id, reason="shard 1 failed: boom", shard=1, metadata=META)
    state = await fail_batch_job(cmd, jobs.ports)
    assert state.status == FAILED and state.error == "shard 1 failed: boom"
    await fail_batch_job(cmd, jobs.ports)
    assert [type(e) for e in jobs.job_events(job.job_id)] == [BatchJobSubmitted, BatchJobFailed]
    assert not (await jobs.shard(job.job_id, 0)).changed


async def test_replan_dispatches_only_missing_shards_of_running_jobs(jobs: JobFakes) -> None:
    running = await jobs.submit()
    await jobs.plan(running.job_id)
    await jobs.shard(running.job_id, 1)
    queued = await jobs.submit()
    done = await jobs.submit(dataset_id="tiny_5")
    await jobs.plan(done.job_id)
    await jobs.shard(done.job_id, 0)
    await jobs.aggregate(done.job_id)
    jobs.queue.dispatches.clear()
    replanned = await replan_lost_shards(ReplanLostShards(), jobs.ports)
    assert replanned == {running.job_id: 2}
    assert jobs.queue.shards(running.job_id) == [0, 2]
    assert jobs.queue.shards(queued.job_id) == [] and jobs.queue.shards(done.job_id) == []
