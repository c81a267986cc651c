"""The regression gate's state: a fold over the gate's events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from domain.registry.gate_policy import GateOutcome
from events.base import RecordedEvent
from events.gates import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    AccuracyFigures,
    GateCheck,
    GateErrored,
    GateEvaluated,
    GateEvaluationsRequested,
    GateRequested,
    GateThresholds,
    LatencyFigures,
)

REQUESTED, EVALUATING, PASSED, FAILED, ERRORED, UNDECIDED = (
    "requested",
    "evaluating",
    "passed",
    "failed",
    "errored",
    "inconclusive",
)
TERMINAL = frozenset({PASSED, FAILED, ERRORED, UNDECIDED})
_STATUS = {PASS: PASSED, FAIL: FAILED, INCONCLUSIVE: UNDECIDED}
ERRORED_VERDICT = "ERRORED"


@dataclass
class GateState:
    """One gate as its events say it is now."""

    gate_id: str
    stream_version: int = 0
    status: str | None = None
    model_name: str = ""
    candidate_version: str = ""
    baseline_version: str = ""
    dataset_id: str = ""
    thresholds: GateThresholds = field(default_factory=GateThresholds)
    auto: bool = False
    cause: str | None = None
    requested_by: str | None = None
    requested_at: datetime | None = None
    candidate_job_id: str | None = None
    baseline_job_id: str | None = None
    submitted: list[str] = field(default_factory=list)
    verdict: str | None = None
    checks: list[GateCheck] = field(default_factory=list)
    accuracy: AccuracyFigures | None = None
    latency: LatencyFigures | None = None
    error: str | None = None
    decided_at: datetime | None = None
    warning: str | None = None
    # INCONCLUSIVE: the evidence still needed, in words.
    needed: str | None = None

    @property
    def exists(self) -> bool:
        """True once the gate was requested."""
        return self.status is not None

    @property
    def finished(self) -> bool:
        """True once the gate has a verdict or an error."""
        return self.status in TERMINAL

    def outcome(self) -> GateOutcome | None:
        """The facts the promotion rule needs, once the gate is finished."""
        if not self.finished or self.decided_at is None or self.verdict is None:
            return None
        return GateOutcome(
            gate_id=self.gate_id,
            model_name=self.model_name,
            candidate_version=self.candidate_version,
            baseline_version=self.baseline_version,
            verdict=self.verdict,
            decided_at=self.decided_at,
            dataset_id=self.dataset_id,
            images=self.accuracy.images if self.accuracy is not None else None,
            needed=self.needed,
        )


def fold(gate_id: str, history: list[RecordedEvent]) -> GateState:
    """Rebuild a gate's state from its events, oldest first."""
    state = GateState(gate_id=gate_id)
    for recorded in history:
        evolve(state, recorded)
    return state


def evolve(state: GateState, recorded: RecordedEvent) -> GateState:
    """Apply one recorded event to the state (in place) and return it."""
    e, at = recorded.event, recorded.recorded_at
    state.stream_version = recorded.stream_version
    match e:
        case GateRequested():
            state.status = REQUESTED
            state.model_name, state.dataset_id = e.model_name, e.dataset_id
            state.candidate_version, state.baseline_version = (
                e.candidate_version,
                e.baseline_version,
            )
            state.thresholds, state.auto, state.cause = e.thresholds, e.auto, e.cause
            state.requested_by, state.requested_at = recorded.metadata.actor, at
            state.warning = e.warning
        case GateEvaluationsRequested():
            state.status = EVALUATING
            state.candidate_job_id, state.baseline_job_id = e.candidate_job_id, e.baseline_job_id
            state.submitted = list(e.submitted)
        case GateEvaluated():
            state.status = _STATUS.get(e.verdict, FAILED)
            state.verdict, state.checks = e.verdict, list(e.checks)
            state.needed = e.needed
            state.accuracy, state.latency = e.accuracy, e.latency
            state.decided_at = at
        case GateErrored():
            state.status, state.verdict = ERRORED, ERRORED_VERDICT
            state.error, state.decided_at = e.reason, at
    return state
