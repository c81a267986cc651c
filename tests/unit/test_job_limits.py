"""Bounded batch work: shards per job, active jobs per key, and an aggregate that counts
finished shards instead of folding the job's whole stream on every shard."""

from __future__ import annotations

import pytest

from domain.errors import Conflict, InvalidInput
from domain.jobs.commands import CancelBatchJob
from domain.jobs.handlers import cancel_batch_job
from events.base import EventMetadata
from tests.unit.fakes import FakeJobStore
from tests.unit.wiring import JobFakes

pytestmark = pytest.mark.anyio


async def test_a_job_of_too_many_shards_is_refused_with_what_fits() -> None:
    jobs = JobFakes()
    with pytest.raises(InvalidInput) as err:
        await jobs.submit(shard_size=1, max_shards=100)  # 250 images -> 250 shards
    text = str(err.value)
    assert "250 shards" in text and "MAX_SHARDS_PER_JOB" in text and "shard_size >= 3" in text
    assert jobs.uow.db.log and all("job-" not in r.stream_id for r in jobs.uow.db.log)
    assert (await jobs.submit(shard_size=3, max_shards=100)).planned_shards == 84


async def test_a_key_may_have_only_so_many_jobs_queued_or_running() -> None:
    jobs = JobFakes(actor="alice")
    first = await jobs.submit(max_active=2)
    await jobs.plan(first.job_id)  # running counts too
    await jobs.submit(max_active=2)
    with pytest.raises(Conflict, match=r"alice has 2 jobs .*MAX_ACTIVE_JOBS_PER_KEY"):
        await jobs.submit(max_active=2)
    jobs.metadata = EventMetadata(actor="bob")  # another key is not held back by alice's jobs
    await jobs.submit(max_active=2)
    await cancel_batch_job(
        CancelBatchJob(job_id=first.job_id, reason=None, metadata=EventMetadata(actor="alice")),
        jobs.ports,
    )
    jobs.metadata = EventMetadata(actor="alice")
    await jobs.submit(max_active=2)  # a finished job frees its place


async def test_the_aggregate_folds_the_job_only_once_every_shard_is_in(monkeypatch) -> None:
    jobs = JobFakes()
    job = await jobs.submit()
    await jobs.plan(job.job_id)
    loads = []
    load = FakeJobStore.load

    async def counted(self, job_id):
        loads.append(job_id)
        return await load(self, job_id)

    for shard in (0, 1):
        await jobs.shard(job.job_id, shard)
        monkeypatch.setattr(FakeJobStore, "load", counted)
        assert not (await jobs.aggregate(job.job_id)).changed
        monkeypatch.setattr(FakeJobStore, "load", load)
    assert loads == []  # before: two folds of the whole stream per completed shard
    await jobs.shard(job.job_id, 2)
    assert (await jobs.aggregate(job.job_id)).changed
