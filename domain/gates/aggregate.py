"""The regression-gate aggregate: requested -> evaluating -> passed | failed | errored."""

from __future__ import annotations

import uuid

from domain import names
from domain.errors import Conflict, InvalidInput, NotFound
from domain.gates.commands import (
    EndGate,
    EvaluateGate,
    GateCommand,
    OpenGate,
    RecordGateEvaluations,
)
from domain.gates.state import (
    ERRORED,
    ERRORED_VERDICT,
    EVALUATING,
    FAILED,
    PASSED,
    REQUESTED,
    TERMINAL,
    UNDECIDED,
    GateState,
    evolve,
    fold,
)
from domain.gates.verdict import evaluate_checks, judge, overall_verdict
from domain.registry.gate_policy import check_thresholds
from events.base import Event
from events.gates import (
    GateErrored,
    GateEvaluationsRequested,
    GateRequested,
)

# The commands, the state and the verdict rules are re-exported: callers know the gate as
# domain.gates.aggregate.
__all__ = [
    "ERRORED",
    "ERRORED_VERDICT",
    "EVALUATING",
    "FAILED",
    "PASSED",
    "REQUESTED",
    "TERMINAL",
    "UNDECIDED",
    "EndGate",
    "EvaluateGate",
    "GateCommand",
    "GateState",
    "OpenGate",
    "RecordGateEvaluations",
    "check_gate_id",
    "decide_gate",
    "evaluate_checks",
    "evaluation_job_id",
    "evolve",
    "fold",
    "overall_verdict",
]

# Namespace of the deterministic ids of the batch jobs a gate submits.
_JOB_NAMESPACE = uuid.UUID("6d1f7c1e-5b1a-4d7e-9a61-0c6f4a9e2b37")


def decide_gate(state: GateState, command: GateCommand) -> list[Event]:
    """Check a command against the gate; return the events it causes (empty if a repeat)."""
    if isinstance(command, OpenGate):
        return _request(state, command)
    if not state.exists:
        raise NotFound(f"unknown gate {state.gate_id!r}")
    if state.finished:
        return []  # a verdict or an error is final: repeats after a crash emit nothing
    match command:
        case RecordGateEvaluations():
            if state.candidate_job_id is not None:
                return []
            for job_id in (command.candidate_job_id, command.baseline_job_id):
                names.check_job_id(job_id)
            return [
                GateEvaluationsRequested(
                    gate_id=state.gate_id,
                    candidate_job_id=command.candidate_job_id,
                    baseline_job_id=command.baseline_job_id,
                    submitted=list(command.submitted),
                )
            ]
        case EvaluateGate():
            return [judge(state, command)]
        case EndGate():
            reason = (command.reason or "").strip() or "the gate could not be evaluated"
            return [GateErrored(gate_id=state.gate_id, reason=reason[: names.MAX_REASON])]
    raise InvalidInput(f"unknown command {type(command).__name__}")


def evaluation_job_id(gate_id: str, model_version: str) -> str:
    """The id of the batch job a gate submits for a version: a retry resubmits the same job."""
    return str(uuid.uuid5(_JOB_NAMESPACE, f"{gate_id}/{model_version}"))


def check_gate_id(gate_id: str) -> str:
    """Gate ids are UUIDs; anything else names no gate (NotFound)."""
    try:
        uuid.UUID(gate_id)
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"unknown gate {gate_id!r} (gate ids are UUIDs)") from None
    return gate_id


def _request(state: GateState, cmd: OpenGate) -> list[Event]:
    names.check_model_name(cmd.model_name)
    names.check_version(cmd.candidate_version)
    names.check_version(cmd.baseline_version)
    if not isinstance(cmd.dataset_id, str) or not cmd.dataset_id.strip():
        raise InvalidInput("dataset_id must be a non-empty string")
    names.check_text(cmd.dataset_id, "dataset_id")
    check_thresholds(cmd.thresholds)
    reason = names.check_reason(cmd.reason)
    try:
        uuid.UUID(cmd.gate_id)
    except (ValueError, TypeError, AttributeError):
        raise InvalidInput(f"invalid gate id {cmd.gate_id!r}: gate ids are UUIDs") from None
    if state.exists:
        same = (state.model_name, state.candidate_version, state.baseline_version) == (
            cmd.model_name,
            cmd.candidate_version,
            cmd.baseline_version,
        )
        if same and state.dataset_id == cmd.dataset_id:
            return []
        raise Conflict(f"gate {state.gate_id} already exists for another comparison")
    return [
        GateRequested(
            gate_id=cmd.gate_id,
            model_name=cmd.model_name,
            candidate_version=cmd.candidate_version,
            baseline_version=cmd.baseline_version,
            dataset_id=cmd.dataset_id,
            thresholds=cmd.thresholds,
            auto=cmd.auto,
            cause=cmd.cause,
            reason=reason,
            warning=cmd.warning,
        )
    ]
