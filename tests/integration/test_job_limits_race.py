"""MAX_ACTIVE_JOBS_PER_KEY on real PostgreSQL: concurrent submissions of one actor are counted in
the transaction that records each job, after its append, so they never pass the limit together."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from domain.errors import Conflict
from domain.jobs.commands import SubmitBatchJob
from domain.registry.commands import PromoteModelVersion, RegisterModelVersion
from events.base import EventMetadata

pytestmark = pytest.mark.anyio


async def test_concurrent_submissions_of_one_actor_stop_at_the_limit(
    platform, model_name, state_dict_file
) -> None:
    p = replace(platform, settings=platform.settings.changed(batch={"max_active_jobs_per_key": 2}))
    meta = EventMetadata(actor=f"racer-{model_name}")
    source = str(state_dict_file())
    await p.bus.handle(
        RegisterModelVersion(
            model_name=model_name, model_version="v1", source=source, metadata=meta
        )
    )
    await p.bus.handle(
        PromoteModelVersion(model_name=model_name, model_version="v1", metadata=meta)
    )
    submit = SubmitBatchJob(
        model_name=model_name, dataset_id="fashion_mnist_100", batch_size=50, metadata=meta
    )
    results = await asyncio.gather(
        *(p.bus.handle(submit) for _ in range(6)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(refused) == 4 and all("MAX_ACTIVE_JOBS_PER_KEY" in str(r) for r in refused)
    assert len([r for r in results if not isinstance(r, BaseException)]) == 2
    assert len([j for j in await p.job_queries.list(model_name=model_name)]) == 2
