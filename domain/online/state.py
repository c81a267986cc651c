"""A model's shadows and canaries folded from ``online-<model>``, and the decisions on it (pure)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from domain.errors import Conflict, InvalidInput, NotFound
from events.base import RecordedEvent
from events.online import (
    CanaryAborted,
    CanaryCompleted,
    CanaryStarted,
    CanaryStepped,
    Margins,
    OnlineFigures,
    ShadowStarted,
    ShadowStopped,
    ShadowVerdict,
)

MAX_STEPS = 10


class ShadowRun(msgspec.Struct, kw_only=True):
    """The running shadow of a model (what each API process follows)."""

    shadow_id: str
    candidate_version: str
    prod_version: str
    fraction: float
    started_at: datetime
    until: datetime | None = None
    margins: Margins = msgspec.field(default_factory=Margins)
    verdict: str | None = None
    figures: OnlineFigures | None = None
    verdict_at: datetime | None = None


class StepPassed(msgspec.Struct, frozen=True, kw_only=True):
    """A canary step that passed: its share, when, and the figures that let it pass."""

    step: int
    share: int
    at: datetime
    figures: OnlineFigures


class CanaryRun(msgspec.Struct, kw_only=True):
    """The running canary of a model: the candidate's share is ``steps[step]`` percent."""

    canary_id: str
    candidate_version: str
    prod_version: str
    steps: list[int]
    min_requests: int
    max_duration_s: float
    started_at: datetime
    step: int = 0
    step_started_at: datetime | None = None
    margins: Margins = msgspec.field(default_factory=Margins)
    figures: OnlineFigures | None = None
    started_by: str | None = None
    passed: list[StepPassed] = msgspec.field(default_factory=list)

    @property
    def share(self) -> int:
        """The percentage of unpinned requests the candidate takes now."""
        return self.steps[self.step]


class Ended(msgspec.Struct, frozen=True, kw_only=True):
    """How a past shadow or canary ended (newest kept, for the console and the CLI)."""

    kind: str  # shadow or canary
    run_id: str
    candidate_version: str
    outcome: str  # stopped/expired/prod-changed, ABORTED or PROMOTED
    why: str
    at: datetime
    figures: OnlineFigures | None = None


@dataclass
class OnlineState:
    """A model's online evaluation: at most one shadow and one canary running."""

    model_name: str
    stream_version: int = 0
    shadow: ShadowRun | None = None
    canary: CanaryRun | None = None
    ended: list[Ended] = field(default_factory=list)


def evolve(state: OnlineState, recorded: RecordedEvent) -> OnlineState:
    """Apply one recorded event (in place)."""
    state.stream_version = recorded.stream_version
    e, at = recorded.event, recorded.recorded_at
    if isinstance(e, ShadowStarted):
        state.shadow = ShadowRun(
            shadow_id=e.shadow_id,
            candidate_version=e.candidate_version,
            prod_version=e.prod_version,
            fraction=e.fraction,
            started_at=at,
            until=e.until,
            margins=e.margins,
        )
    elif isinstance(e, ShadowVerdict) and _shadow(state, e.shadow_id):
        s = state.shadow
        s.verdict, s.figures, s.verdict_at = e.verdict, e.figures, at
    elif isinstance(e, ShadowStopped) and _shadow(state, e.shadow_id):
        s = state.shadow
        _end(
            state,
            Ended(
                kind="shadow",
                run_id=s.shadow_id,
                candidate_version=s.candidate_version,
                outcome=e.why,
                why=e.reason or e.why,
                at=at,
                figures=s.figures,
            ),
        )
        state.shadow = None
    elif isinstance(e, CanaryStarted):
        state.canary = CanaryRun(
            canary_id=e.canary_id,
            candidate_version=e.candidate_version,
            prod_version=e.prod_version,
            steps=list(e.steps),
            min_requests=e.min_requests,
            max_duration_s=e.max_duration_s,
            started_at=at,
            step_started_at=at,
            margins=e.margins,
            started_by=recorded.metadata.actor,
        )
    elif isinstance(e, CanaryStepped) and _canary(state, e.canary_id):
        c = state.canary
        c.passed.append(StepPassed(step=c.step, share=c.share, at=at, figures=e.figures))
        c.step, c.step_started_at, c.figures = e.step, at, e.figures
    elif isinstance(e, CanaryAborted | CanaryCompleted) and _canary(state, e.canary_id):
        c = state.canary
        aborted = isinstance(e, CanaryAborted)
        why = f"{e.check}: {e.why}" if aborted else "every step passed"
        if not aborted and e.approval_request is not None:
            why += f"; promotion request {e.approval_request[:8]} waits for approval (four eyes)"
        _end(
            state,
            Ended(
                kind="canary",
                run_id=c.canary_id,
                candidate_version=c.candidate_version,
                outcome="ABORTED"
                if aborted
                else "APPROVAL-PENDING"
                if e.approval_request
                else "PROMOTED",
                why=why,
                at=at,
                figures=e.figures or c.figures,
            ),
        )
        state.canary = None
    return state


def _shadow(state: OnlineState, shadow_id: str) -> bool:
    return state.shadow is not None and state.shadow.shadow_id == shadow_id


def _canary(state: OnlineState, canary_id: str) -> bool:
    return state.canary is not None and state.canary.canary_id == canary_id


def _end(state: OnlineState, ended: Ended) -> None:
    state.ended = [ended, *state.ended][:10]


def fold(model_name: str, history: list[RecordedEvent]) -> OnlineState:
    """The online state of a model from its stream."""
    state = OnlineState(model_name)
    for r in history:
        evolve(state, r)
    return state


def state_row(state: OnlineState) -> list[dict]:
    """The online_runs row of a model (what API processes and the console read)."""
    if state.stream_version == 0:
        return []
    return [
        {
            "model_name": state.model_name,
            "shadow": msgspec.to_builtins(state.shadow) if state.shadow else None,
            "canary": msgspec.to_builtins(state.canary) if state.canary else None,
            "ended": msgspec.to_builtins(state.ended),
        }
    ]


def check_margins(m: Margins) -> Margins:
    """Margins in range: accuracy and errors in [0, 0.5], latency in [0, 10], alpha in (0, 0.2]."""
    if not 0 <= m.accuracy <= 0.5 or not 0 <= m.errors <= 0.5:
        raise InvalidInput("margins must be between 0 and 0.5 (absolute, e.g. 0.01 = 1 point)")
    if not 0 <= m.latency <= 10:
        raise InvalidInput("the latency margin must be between 0 and 10 (0.2 = 20% slower)")
    if not 0 < m.alpha <= 0.2:
        raise InvalidInput(f"alpha must be above 0 and at most 0.2, got {m.alpha:g}")
    if not 0 <= m.min_labelled <= 1_000_000:
        raise InvalidInput("min_labelled must be between 0 and 1,000,000")
    return m


def check_candidate(
    state: OnlineState, versions: set[str], prod: str | None, version: str, what: str
) -> str:
    """The prod a candidate is compared with; refuses unknown versions and prod itself."""
    if version not in versions:
        raise NotFound(f"model {state.model_name!r} has no version {version!r}")
    if prod is None:
        raise Conflict(f"model {state.model_name!r} has no prod version to compare {version} with")
    if version == prod:
        raise Conflict(
            f"{version} is prod of {state.model_name!r}; a {what} compares another "
            "version with prod"
        )
    return prod


def check_steps(steps: list[int]) -> list[int]:
    """Strictly increasing percentages in 1..100 ending at 100."""
    if not steps or len(steps) > MAX_STEPS:
        raise InvalidInput(f"a canary has 1 to {MAX_STEPS} steps, e.g. 5,25,50,100")
    if any(isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= 100 for s in steps):
        raise InvalidInput(f"steps are whole percentages from 1 to 100, got {steps}")
    if any(b <= a for a, b in itertools.pairwise(steps)) or steps[-1] != 100:
        raise InvalidInput(f"steps must increase and end at 100, got {steps}")
    return steps
