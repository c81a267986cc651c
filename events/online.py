"""Events of online evaluation (area ``online``): shadows and canaries of a candidate version.

Every shadow and canary of a model is on one stream, ``online-<model>``, so two canaries of one
model cannot both start (the second append is stale) and a restart folds it back from the log.
Paired outcomes (both answers of one request) are work messages on ``shadow.outcomes``, not
events: they are high volume.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import msgspec

from events.base import Event

ONLINE_STREAM_PREFIX = "online-"
OUTCOMES_STREAM = "shadow.outcomes"  # work messages (batches of paired outcomes), not events


def online_stream_id(model_name: str) -> str:
    """The event-log stream id of one model's shadows and canaries."""
    return f"{ONLINE_STREAM_PREFIX}{model_name}"


class PairedOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """Both answers to one request (a ``shadow.outcomes`` row, not an event): the served one and
    the other version's, answered off the response path. ``run_id`` is the shadow's or canary's."""

    run_id: str
    request_id: str
    model_name: str
    step: int = 0  # the canary's step when answered (0 for a shadow)
    prod_version: str
    candidate_version: str
    prod_prediction: int | None  # None when that side failed
    candidate_prediction: int | None
    prod_latency_ms: float | None
    candidate_latency_ms: float | None
    at: datetime
    # Which side answered the client: "prod" or "candidate" (None in rows written before it
    # was recorded, all of them canary answers or shadow pairs). A canary's step counts the
    # candidate's; its statistics use both sides' pairs.
    served_by: str | None = None


# The AsyncAPI document's example of a paired outcome.
OUTCOME_EXAMPLE = {
    "run_id": "5b0c6a52-3d7e-4d8e-9a41-0c2f7d1e9b11",
    "request_id": "9f86d081884c7d659a2feaa0c55ad015",
    "model_name": "mnist_cnn",
    "step": 1,
    "prod_version": "v1",
    "candidate_version": "v2",
    "prod_prediction": 7,
    "candidate_prediction": 7,
    "prod_latency_ms": 2.4,
    "candidate_latency_ms": 2.9,
    "at": "2026-12-05T21:30:00Z",
    "served_by": "candidate",
}


class Check(msgspec.Struct, frozen=True, kw_only=True):
    """One sequential check: PASS, FAIL or INCONCLUSIVE with what it saw and what it still needs."""

    name: str  # accuracy, errors, latency
    outcome: str
    n: int
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    needed: int | None = None  # more observations that would decide it (None: not cheaply)


class OnlineFigures(msgspec.Struct, frozen=True, kw_only=True):
    """What the paired outcomes of a shadow or canary showed (all of it, or one step's)."""

    outcomes: int
    labelled: int
    agreement: float | None = None
    prod_accuracy: float | None = None
    candidate_accuracy: float | None = None
    prod_error_rate: float | None = None
    candidate_error_rate: float | None = None
    prod_p95_ms: float | None = None
    candidate_p95_ms: float | None = None
    p95_ratio: float | None = None
    checks: list[Check] = msgspec.field(default_factory=list)


class Margins(msgspec.Struct, frozen=True, kw_only=True):
    """The non-inferiority margins and the error rate of each check's wrong call."""

    accuracy: float = 0.01  # the candidate may be this much less accurate (absolute)
    errors: float = 0.01  # this much more failing (absolute)
    latency: float = 0.2  # its median paired latency ratio may be up to 1 + this
    alpha: float = 0.05
    min_labelled: int = 200


class ShadowStarted(Event, frozen=True, kw_only=True):
    """A fraction of prod's answered requests is also answered by the candidate, off the path."""

    area: ClassVar[str] = "online"
    model_name: str
    shadow_id: str
    candidate_version: str
    prod_version: str
    fraction: float
    until: datetime | None = None
    margins: Margins = msgspec.field(default_factory=Margins)
    reason: str | None = None


class ShadowStopped(Event, frozen=True, kw_only=True):
    """The shadow ended: stopped by a person, its duration ran out, or prod changed."""

    area: ClassVar[str] = "online"
    model_name: str
    shadow_id: str
    why: str
    reason: str | None = None


class ShadowVerdict(Event, frozen=True, kw_only=True):
    """The shadow's sequential verdict so far (recorded when it changes, and now and then)."""

    area: ClassVar[str] = "online"
    model_name: str
    shadow_id: str
    verdict: str
    figures: OnlineFigures


class CanaryStarted(Event, frozen=True, kw_only=True):
    """The candidate takes ``steps[0]`` percent of the requests that name no version."""

    area: ClassVar[str] = "online"
    model_name: str
    canary_id: str
    candidate_version: str
    prod_version: str
    steps: list[int]
    min_requests: int
    max_duration_s: float
    margins: Margins = msgspec.field(default_factory=Margins)
    reason: str | None = None


class CanaryStepped(Event, frozen=True, kw_only=True):
    """No check failed with the step's requests: the candidate takes ``steps[step]`` percent."""

    area: ClassVar[str] = "online"
    model_name: str
    canary_id: str
    step: int  # index into the started steps
    share: int
    figures: OnlineFigures


class CanaryAborted(Event, frozen=True, kw_only=True):
    """The candidate stops taking traffic; prod never changed. ``check`` names what failed."""

    area: ClassVar[str] = "online"
    model_name: str
    canary_id: str
    step: int
    check: str  # accuracy, errors, latency, max-duration, prod-changed, stopped
    why: str
    figures: OnlineFigures | None = None


class CanaryCompleted(Event, frozen=True, kw_only=True):
    """Every step passed and the candidate was promoted (ModelVersionPromoted with canary_id),
    or, where the policy wants four eyes, its promotion request awaits another key's approval."""

    area: ClassVar[str] = "online"
    model_name: str
    canary_id: str
    figures: OnlineFigures
    approval_request: str | None = None


OnlineEvent = (
    ShadowStarted
    | ShadowStopped
    | ShadowVerdict
    | CanaryStarted
    | CanaryStepped
    | CanaryAborted
    | CanaryCompleted
)
