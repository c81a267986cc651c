"""Gate use cases asked for by people and by events: request, policy, automatic gate, promotion.

The evaluation itself (submit or reuse the batch jobs, judge the verdict) lives in
``domain.gates.evaluation``; ``HANDLERS`` routes every gate command to its handler.
"""

from __future__ import annotations

import uuid

import msgspec

from domain import names
from domain.errors import InvalidInput, NotFound, UnknownModel
from domain.gates.aggregate import GateState, OpenGate, check_gate_id, decide_gate
from domain.gates.commands import (
    CheckGate,
    CheckGatesOfJob,
    FailGate,
    FailGatesOfJob,
    GetGatePolicy,
    PromoteAfterGate,
    RequestAutomaticGate,
    RequestGate,
    StartGate,
)
from domain.gates.evaluation import (
    check_gate,
    fail_gate,
    fail_gates_of_job,
    on_job_finished,
    start_gate,
)
from domain.gates.ports import GatePorts
from domain.gates.triggers import auto_gate_request, auto_promotion
from domain.ports import UnitOfWork
from domain.registry.approvals import reference_dataset_of
from domain.registry.commands import SetGatePolicy
from domain.registry.decisions import ModelState, decide
from domain.registry.gate_evidence import dataset_warning
from domain.registry.handlers import change_model
from domain.transactions import CommandResult, in_transaction
from events.gates import GatePolicy


def _resolve(model: ModelState, cmd: RequestGate) -> str:
    """Check the model and both versions; the dataset the gate compares them on."""
    if not model.exists:
        raise UnknownModel(cmd.model_name)
    for version in (cmd.candidate_version, cmd.baseline_version):
        if version not in model.versions:
            known = ", ".join(model.versions)
            raise NotFound(f"model {cmd.model_name!r} has no version {version!r} (known: {known})")
    dataset_id = cmd.dataset_id
    if dataset_id is None:
        return shared_dataset(model, cmd.candidate_version, cmd.baseline_version)
    if not isinstance(dataset_id, str) or not dataset_id.strip():
        raise InvalidInput("dataset_id must be a non-empty string, e.g. fashion_mnist_10000")
    return dataset_id


async def request_gate(cmd: RequestGate, ports: GatePorts) -> GateState:
    """Record GateRequested for a comparison; the gate-evaluation group does the rest.

    The same version as candidate and baseline is legal (it must pass: delta 0, p-value 1).
    The model, the versions and the policy's thresholds are read again in the transaction that
    records the gate; the dataset is sized before it (the catalogue reads files in a thread).
    """
    names.check_model_name(cmd.model_name)
    names.check_version(cmd.candidate_version)
    names.check_version(cmd.baseline_version)
    async with ports.uow() as tx:
        dataset_id = _resolve(await tx.models.load(cmd.model_name), cmd)
    names.check_text(dataset_id, "dataset_id")
    images = await ports.datasets.size(dataset_id)  # InvalidInput listing those that exist here
    gate_id = cmd.gate_id or str(uuid.uuid4())

    async def work(tx: UnitOfWork) -> GateState:
        model = await tx.models.load(cmd.model_name)
        _resolve(model, msgspec.structs.replace(cmd, dataset_id=dataset_id))
        opened = OpenGate(
            gate_id=gate_id,
            model_name=cmd.model_name,
            candidate_version=cmd.candidate_version,
            baseline_version=cmd.baseline_version,
            dataset_id=dataset_id,
            thresholds=model.policy.thresholds,
            reason=cmd.reason,
            warning=dataset_warning(
                model.policy, reference_dataset_of(model, cmd.candidate_version), dataset_id, images
            ),
        )
        state = await tx.gates.load(gate_id)
        await tx.gates.save(state, decide_gate(state, opened), cmd.metadata)
        return state

    return await in_transaction(ports.uow, work, f"gate {gate_id}")


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


async def set_gate_policy(cmd: SetGatePolicy, ports: GatePorts) -> CommandResult:
    """Replace a model's gate policy (GatePolicySet on the model's stream; a repeat records nothing)."""
    checked = msgspec.structs.replace(cmd, model_name=names.check_model_name(cmd.model_name))
    return await change_model(checked, cmd.metadata, ports.uow)


async def gate_policy(query: GetGatePolicy, ports: GatePorts) -> GatePolicy:
    """A model's current gate policy; NotFound for an unknown model."""
    async with ports.uow() as tx:
        model = await tx.models.load(names.check_model_name(query.model_name))
    if not model.exists:
        raise UnknownModel(query.model_name)
    return model.policy


async def auto_gate(cmd: RequestAutomaticGate, ports: GatePorts) -> GateState | None:
    """After an evaluation: gate a staging version against prod when the policy says so.

    Jobs a gate submitted start nothing (that gate is already running); the gate id is derived
    from the job id, so a redelivered EvaluationRecorded starts no second gate.
    """

    async def work(tx: UnitOfWork) -> GateState | None:
        model = await tx.models.load(cmd.model_name)
        from_gate = await tx.gates.submitted_by(cmd.job_id) is not None
        opened = auto_gate_request(model, cmd.model_version, cmd.dataset_id, cmd.job_id, from_gate)
        if opened is None or not await tx.mark_processed(cmd.delivery.group, cmd.delivery.event_id):
            return None
        state = await tx.gates.load(opened.gate_id)
        recorded = await tx.gates.save(state, decide_gate(state, opened), cmd.metadata)
        return state if recorded else None

    return await in_transaction(ports.uow, work, f"model {cmd.model_name!r}")


async def auto_promote(cmd: PromoteAfterGate, ports: GatePorts) -> CommandResult | None:
    """After a PASS: promote the candidate when the policy has auto_promote on (gate id as cause).

    Nothing happens once prod moved away from the gate's baseline or the candidate left staging;
    a promotion the policy refuses raises Conflict naming why.
    """
    check_gate_id(cmd.gate_id)

    async def work(tx: UnitOfWork) -> CommandResult | None:
        gate = await tx.gates.load(cmd.gate_id)
        if not gate.exists:
            return None
        model = await tx.models.load(gate.model_name)
        promote = auto_promotion(model, gate, ports.clock.now(), cmd.metadata)
        if promote is None or not await tx.mark_processed(
            cmd.delivery.group, cmd.delivery.event_id
        ):
            return None
        # Every finished gate of the candidate: a FAIL on as many images overrules this PASS.
        found = await tx.gates.outcomes(gate.model_name, gate.candidate_version)
        others = tuple(g for g in found if g.gate_id != cmd.gate_id)
        promote = msgspec.structs.replace(promote, gates=(*promote.gates, *others))
        recorded = await tx.models.save(model, decide(model, promote), cmd.metadata)
        return CommandResult(state=model, recorded=recorded)

    return await in_transaction(ports.uow, work, f"gate {cmd.gate_id}")


HANDLERS = {
    RequestGate: request_gate,
    SetGatePolicy: set_gate_policy,
    GetGatePolicy: gate_policy,
    StartGate: start_gate,
    FailGate: fail_gate,
    FailGatesOfJob: fail_gates_of_job,
    RequestAutomaticGate: auto_gate,
    PromoteAfterGate: auto_promote,
}
"""The gate commands a GatePorts serves (the message bus routes by command type)."""

VERDICT_HANDLERS = {CheckGate: check_gate, CheckGatesOfJob: on_job_finished}
"""The gate commands that judge: they need a worker's paired latency meter (VerdictPorts)."""
