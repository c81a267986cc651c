"""Evaluating a gate: reuse or submit the batch jobs, then judge once both have finished.

Driven by events, never by polling: GateRequested starts the gate, and GateEvaluationsRequested
or the completion (failure, cancellation) of a job the gate waits on checks it. Everything that
cannot run ends the gate as GateErrored with the reason. A verdict is final, so a redelivered
event or a restarted worker never records a second one.
"""

from __future__ import annotations

import msgspec

from domain.delivery import Delivery
from domain.errors import IntegrityError, InvalidInput, NotFound
from domain.gates.aggregate import (
    EndGate,
    EvaluateGate,
    GateCommand,
    GateState,
    RecordGateEvaluations,
    decide_gate,
    evaluation_job_id,
)
from domain.gates.commands import CheckGate, CheckGatesOfJob, FailGate, FailGatesOfJob, StartGate
from domain.gates.ports import GatePorts, VerdictPorts
from domain.jobs.aggregate import CANCELLED, SUCCEEDED, JobState
from domain.jobs.aggregate import FAILED as JOB_FAILED
from domain.jobs.commands import SubmitBatchJob
from domain.jobs.handlers import submit_batch_job
from domain.jobs.store import ShardResult
from domain.ports import UnitOfWork, UnitOfWorkFactory
from domain.registry.decisions import ModelState
from domain.transactions import in_transaction
from events.base import EventMetadata

# Batch size of the evaluation jobs a gate submits (as `just batch` uses by default).
EVALUATION_BATCH = 256


class GateResult(msgspec.Struct, kw_only=True):
    """A gate's state after a handler ran, and whether this call changed it."""

    state: GateState
    changed: bool


async def _decide(
    uow: UnitOfWorkFactory,
    gate_id: str,
    cmd: GateCommand,
    metadata: EventMetadata,
    processed: Delivery | None = None,
) -> GateResult:
    """Load, decide, save (with the processed row when given); retried on a lost race."""

    async def work(tx: UnitOfWork) -> GateResult:
        state = await tx.gates.load(gate_id)
        events = decide_gate(state, cmd)
        if not events or (
            processed and not await tx.mark_processed(processed.group, processed.event_id)
        ):
            return GateResult(state=state, changed=False)
        await tx.gates.save(state, events, metadata)
        return GateResult(state=state, changed=True)

    return await in_transaction(uow, work, f"gate {gate_id}")


async def _fail(
    uow: UnitOfWorkFactory, gate_id: str, reason: str, metadata: EventMetadata
) -> GateResult:
    return await _decide(uow, gate_id, EndGate(gate_id=gate_id, reason=reason), metadata)


async def fail_gate(cmd: FailGate, ports: GatePorts | VerdictPorts) -> GateResult:
    """End a gate as errored with the reason (nothing if it already has a verdict)."""
    return await _fail(ports.uow, cmd.gate_id, cmd.reason, cmd.metadata)


def missing_version(model: ModelState | None, gate: GateState) -> str | None:
    """Why the compared versions cannot be loaded any more, or None."""
    if model is None or not model.exists:
        return f"model {gate.model_name!r} no longer exists"
    for version in (gate.candidate_version, gate.baseline_version):
        if version not in model.versions:
            return f"version {version} of {gate.model_name} no longer exists"
    return None


def reusable_job(model: ModelState, version: str, dataset_id: str) -> str | None:
    """The completed evaluation job of ``version`` on ``dataset_id``, if one was recorded."""
    summary = model.versions[version].evaluations.get(dataset_id)
    job_id = summary.get("job_id") if summary else None
    return job_id if isinstance(job_id, str) else None


async def fail_gates_of_job(cmd: FailGatesOfJob, ports: GatePorts) -> list[GateResult]:
    """End every gate still waiting on a job as errored, with the reason."""
    waiting = await gates_waiting_on(cmd.job_id, ports.uow)
    return [await _fail(ports.uow, gate_id, cmd.reason, cmd.metadata) for gate_id in waiting]


async def start_gate(cmd: StartGate, ports: GatePorts) -> GateResult:
    """On GateRequested: record which jobs the gate compares, then submit the missing ones.

    Recorded evaluations on the dataset are reused. Missing ones get deterministic job ids, which
    are recorded before the jobs are submitted: a crash in between resubmits the same jobs, and an
    evaluation a gate submitted is known as the gate's (so it starts no automatic gate).
    """
    gate_id, metadata, uow = cmd.gate_id, cmd.metadata, ports.uow
    async with uow() as tx:
        gate = await tx.gates.load(gate_id)
        model = await tx.models.load(gate.model_name) if gate.exists else None
    if not gate.exists or gate.finished:
        return GateResult(state=gate, changed=False)
    changed = False
    if gate.candidate_job_id is None:
        problem = missing_version(model, gate)
        if problem is None:
            try:
                await ports.datasets.size(gate.dataset_id)
            except InvalidInput as exc:
                problem = f"dataset {gate.dataset_id!r} cannot be read: {exc}"
        if problem is not None:
            return await _fail(uow, gate_id, problem, metadata)
        assert model is not None
        jobs, submitted = {}, []
        for version in dict.fromkeys((gate.candidate_version, gate.baseline_version)):
            jobs[version] = reusable_job(model, version, gate.dataset_id)
            if jobs[version] is None:
                jobs[version] = evaluation_job_id(gate_id, version)
                submitted.append(jobs[version])
        record = RecordGateEvaluations(
            gate_id=gate_id,
            candidate_job_id=jobs[gate.candidate_version],
            baseline_job_id=jobs[gate.baseline_version],
            submitted=submitted,
        )
        result = await _decide(uow, gate_id, record, metadata)
        gate, changed = result.state, result.changed
    for job_id in gate.submitted:
        version = (
            gate.candidate_version if job_id == gate.candidate_job_id else gate.baseline_version
        )
        async with uow() as tx:
            exists = (await tx.jobs.load(job_id)).exists
        if exists:
            continue
        try:
            submit = SubmitBatchJob(
                model_name=gate.model_name,
                dataset_id=gate.dataset_id,
                batch_size=EVALUATION_BATCH,
                model_version=version,
                job_id=job_id,
                limited=False,  # the platform's own evaluations: no key's quota counts them
                metadata=metadata,
            )
            await submit_batch_job(submit, ports.jobs)
        except (InvalidInput, NotFound) as exc:
            reason = f"the evaluation of {version} could not be submitted: {exc}"
            return await _fail(uow, gate_id, reason, metadata)
    return GateResult(state=gate, changed=changed)


def _in_dataset_order(rows: list[ShardResult]) -> tuple[list[int], list[int]]:
    """Labels and predictions of a job's shards, image by image in dataset order."""
    rows = sorted(rows, key=lambda r: r.start)
    return [t for r in rows for t in r.labels], [p for r in rows for p in r.predictions]


def _job_problem(job: JobState, version: str) -> str | None:
    if job.status in (JOB_FAILED, CANCELLED):
        return (
            f"the evaluation job {job.job_id} of {version} {job.status}: {job.error or 'no reason'}"
        )
    return None


async def check_gate(cmd: CheckGate, ports: VerdictPorts) -> GateResult:
    """When a job the gate waits on finishes (or the gate recorded its jobs): judge if both are in.

    A failed or cancelled job ends the gate as errored; with both succeeded, the paired
    predictions and a paired latency run become the verdict, recorded with the processed row.
    """
    gate_id, metadata, uow = cmd.gate_id, cmd.metadata, ports.uow
    async with uow() as tx:
        gate = await tx.gates.load(gate_id)
        if not gate.exists or gate.finished or gate.candidate_job_id is None:
            return GateResult(state=gate, changed=False)
        assert gate.baseline_job_id is not None
        candidate = await tx.jobs.load(gate.candidate_job_id)
        baseline = await tx.jobs.load(gate.baseline_job_id)
        model = await tx.models.load(gate.model_name)
    for job, version in ((candidate, gate.candidate_version), (baseline, gate.baseline_version)):
        if problem := _job_problem(job, version):
            return await _fail(uow, gate_id, problem, metadata)
    if candidate.status != SUCCEEDED or baseline.status != SUCCEEDED:
        return GateResult(state=gate, changed=False)  # the other job's completion comes later
    if problem := missing_version(model, gate):
        return await _fail(uow, gate_id, problem, metadata)
    async with uow() as tx:
        cand_labels, cand_preds = _in_dataset_order(await tx.jobs.shard_results(candidate.job_id))
        base_labels, base_preds = _in_dataset_order(await tx.jobs.shard_results(baseline.job_id))
    versions = model.versions
    try:
        run = await ports.latency.measure(
            versions[gate.baseline_version], versions[gate.candidate_version], gate.dataset_id
        )
    except (InvalidInput, NotFound, IntegrityError) as exc:
        return await _fail(uow, gate_id, f"the paired latency run failed: {exc}", metadata)
    verdict = EvaluateGate(
        gate_id=gate_id,
        baseline_labels=base_labels,
        candidate_labels=cand_labels,
        baseline_predictions=base_preds,
        candidate_predictions=cand_preds,
        baseline_latency_ms=run.baseline_ms,
        candidate_latency_ms=run.candidate_ms,
        latency_batch_size=run.batch_size,
        latency_order=run.order,
    )
    # One event may check several gates: each gets its own processed key.
    return await _decide(uow, gate_id, verdict, metadata, processed=cmd.delivery.part(gate_id))


async def gates_waiting_on(job_id: str, uow: UnitOfWorkFactory) -> list[str]:
    """Ids of the gates still evaluating that compare ``job_id``."""
    async with uow() as tx:
        return await tx.gates.waiting_on(job_id)


async def on_job_finished(cmd: CheckGatesOfJob, ports: VerdictPorts) -> list[GateResult]:
    """A job completed, failed or was cancelled: check every gate that waits on it."""
    return [
        await check_gate(
            CheckGate(gate_id=gate_id, delivery=cmd.delivery, metadata=cmd.metadata), ports
        )
        for gate_id in await gates_waiting_on(cmd.job_id, ports.uow)
    ]
