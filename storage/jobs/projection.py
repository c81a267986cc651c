"""The batch jobs' projection: one batch_jobs row per job."""

from __future__ import annotations

from domain.jobs.aggregate import JobState, evolve_job, fold_job, job_row
from events.streams import JOB_STREAM_PREFIX
from storage.repository import Projection
from storage.tables import batch_jobs

JOB_PROJECTION = "job-projections"

JOBS: Projection[JobState] = Projection(
    name=JOB_PROJECTION,
    prefix=JOB_STREAM_PREFIX,
    key="job_id",
    fold=fold_job,
    evolve=evolve_job,
    rows=lambda state: {batch_jobs: [job_row(state)]},
    tables=(batch_jobs,),
)
