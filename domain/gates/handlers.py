"""Gate use cases asked for by people and by events: request, policy, automatic gate, promotion.

The evaluation itself (submit or reuse the batch jobs, judge the verdict) lives in
``domain.gates.evaluation``; the ``gate-evaluation`` consumer group calls both.
"""

from __future__ import annotations

import uuid

from domain import names
from domain.errors import InvalidInput, NotFound
from domain.gates.aggregate import GateState, RequestGate, check_gate_id, decide_gate
from domain.gates.triggers import auto_gate_request, auto_promotion
from domain.ports import Clock, DatasetCatalog, UnitOfWork, UnitOfWorkFactory
from domain.registry.commands import SetGatePolicy
from domain.registry.decisions import ModelState, decide
from domain.registry.handlers import change_model
from domain.transactions import CommandResult, in_transaction
from events.base import EventMetadata
from events.gates import GatePolicy


async def request_gate(
    *,
    model_name: str,
    candidate_version: str,
    baseline_version: str,
    dataset_id: str | None,
    reason: str | None = None,
    metadata: EventMetadata,
    uow: UnitOfWorkFactory,
    datasets: DatasetCatalog,
    gate_id: str | None = None,
) -> GateState:
    """Record GateRequested for a comparison; the gate-evaluation group does the rest.

    Without ``dataset_id`` the gate uses a dataset both versions were evaluated on. The same
    version as candidate and baseline is legal (it must pass: delta 0, p-value 1).
    """
    names.check_model_name(model_name)
    names.check_version(candidate_version)
    names.check_version(baseline_version)
    async with uow() as tx:
        model = await tx.models.load(model_name)
    if not model.exists:
        raise NotFound(f"unknown model {model_name!r} (`just list` shows the registered models)")
    for version in (candidate_version, baseline_version):
        if version not in model.versions:
            known = ", ".join(model.versions)
            raise NotFound(f"model {model_name!r} has no version {version!r} (known: {known})")
    if dataset_id is None:
        dataset_id = shared_dataset(model, candidate_version, baseline_version)
    elif not isinstance(dataset_id, str) or not dataset_id.strip():
        raise InvalidInput("dataset_id must be a non-empty string, e.g. fashion_mnist_10000")
    names.check_text(dataset_id, "dataset_id")
    await datasets.size(dataset_id)  # InvalidInput listing the datasets that exist here
    cmd = RequestGate(
        gate_id=gate_id or str(uuid.uuid4()),
        model_name=model_name,
        candidate_version=candidate_version,
        baseline_version=baseline_version,
        dataset_id=dataset_id,
        thresholds=model.policy.thresholds,
        reason=reason,
    )

    async def work(tx: UnitOfWork) -> GateState:
        state = await tx.gates.load(cmd.gate_id)
        await tx.gates.save(state, decide_gate(state, cmd), metadata)
        return state

    return await in_transaction(uow, work, f"gate {cmd.gate_id}")


def shared_dataset(model: ModelState, candidate: str, baseline: str) -> str:
    """The dataset both versions were evaluated on (the largest, if several); else say what to pass."""
    c = model.versions[candidate].evaluations
    b = model.versions[baseline].evaluations
    shared = [d for d in c if d in b]
    if shared:
        return max(shared, key=lambda d: (int(c[d].get("images") or 0), d))
    if not c and not b:
        raise InvalidInput(
            f"neither {candidate} nor {baseline} of {model.model_name} has been evaluated yet; "
            "pass a dataset id (dataset_id, or --dataset ID), e.g. fashion_mnist_10000, and the "
            "gate evaluates both versions on it"
        )
    raise InvalidInput(
        f"{candidate} and {baseline} of {model.model_name} were evaluated on different datasets "
        f"only ({candidate}: {', '.join(c) or 'none'}; {baseline}: {', '.join(b) or 'none'}); "
        "pass one dataset id (dataset_id, or --dataset ID) and the gate evaluates whichever "
        "version lacks it"
    )


async def set_gate_policy(
    model_name: str,
    policy: GatePolicy,
    reason: str | None,
    metadata: EventMetadata,
    uow: UnitOfWorkFactory,
) -> CommandResult:
    """Replace a model's gate policy (GatePolicySet on the model's stream; a repeat records nothing)."""
    cmd = SetGatePolicy(model_name=names.check_model_name(model_name), policy=policy, reason=reason)
    return await change_model(cmd, metadata, uow)


async def gate_policy(model_name: str, uow: UnitOfWorkFactory) -> GatePolicy:
    """A model's current gate policy; NotFound for an unknown model."""
    async with uow() as tx:
        model = await tx.models.load(names.check_model_name(model_name))
    if not model.exists:
        raise NotFound(f"unknown model {model_name!r}")
    return model.policy


async def auto_gate(
    *,
    model_name: str,
    model_version: str,
    dataset_id: str,
    job_id: str,
    group: str,
    event_id: uuid.UUID,
    metadata: EventMetadata,
    uow: UnitOfWorkFactory,
) -> GateState | None:
    """After an evaluation: gate a staging version against prod when the policy says so.

    Jobs a gate submitted start nothing (that gate is already running); the gate id is derived
    from the job id, so a redelivered EvaluationRecorded starts no second gate.
    """

    async def work(tx: UnitOfWork) -> GateState | None:
        model = await tx.models.load(model_name)
        from_gate = await tx.gates.submitted_by(job_id) is not None
        cmd = auto_gate_request(model, model_version, dataset_id, job_id, from_gate)
        if cmd is None or not await tx.mark_processed(group, event_id):
            return None
        state = await tx.gates.load(cmd.gate_id)
        recorded = await tx.gates.save(state, decide_gate(state, cmd), metadata)
        return state if recorded else None

    return await in_transaction(uow, work, f"model {model_name!r}")


async def auto_promote(
    gate_id: str,
    *,
    group: str,
    event_id: uuid.UUID,
    metadata: EventMetadata,
    uow: UnitOfWorkFactory,
    clock: Clock,
) -> CommandResult | None:
    """After a PASS: promote the candidate when the policy has auto_promote on (gate id as cause).

    Nothing happens once prod moved away from the gate's baseline or the candidate left staging;
    a promotion the policy refuses raises Conflict naming why.
    """
    check_gate_id(gate_id)

    async def work(tx: UnitOfWork) -> CommandResult | None:
        gate = await tx.gates.load(gate_id)
        if not gate.exists:
            return None
        model = await tx.models.load(gate.model_name)
        cmd = auto_promotion(model, gate, clock.now())
        if cmd is None or not await tx.mark_processed(group, event_id):
            return None
        recorded = await tx.models.save(model, decide(model, cmd), metadata)
        return CommandResult(state=model, recorded=recorded)

    return await in_transaction(uow, work, f"gate {gate_id}")
