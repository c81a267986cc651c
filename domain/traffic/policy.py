"""Capture policies and the rules of captured requests, feedback and frozen datasets (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import msgspec

from domain.errors import Conflict, InvalidInput, NotFound
from events.base import Event, RecordedEvent
from events.traffic import TRAFFIC_DATASET_PREFIX, CapturePolicySet

MAX_PER_S = 10_000.0
MAX_RETENTION_DAYS = 3650
DEFAULT_RETENTION_DAYS = 30
MAX_FEEDBACK = 1000  # labels per POST /feedback
MAX_FROZEN = 50_000  # requests per frozen dataset (the manifest is one event)
# A request id as the API hands it out, plus ".<i>" for image i of a several-image v2 request.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,72}$")
_DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class CapturePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """What a model captures; fraction 0 (the default) captures nothing but kept requests."""

    model_name: str
    fraction: float = 0.0
    max_per_s: float = 0.0
    retention_days: int = DEFAULT_RETENTION_DAYS
    # Who set it, when and why: folded from the stream (the projected row leaves them None).
    set_by: str | None = None
    set_at: datetime | None = None
    reason: str | None = None


@dataclass
class CaptureState:
    """A model's capture policy folded from ``capture-<model>``."""

    model_name: str
    stream_version: int = 0
    policy: CapturePolicy | None = None


def evolve_policy(state: CaptureState, recorded: RecordedEvent) -> CaptureState:
    """Apply one recorded event (in place)."""
    state.stream_version = recorded.stream_version
    e = recorded.event
    if isinstance(e, CapturePolicySet):
        state.policy = CapturePolicy(
            model_name=state.model_name,
            fraction=e.fraction,
            max_per_s=e.max_per_s,
            retention_days=e.retention_days,
            set_by=recorded.metadata.actor,
            set_at=recorded.recorded_at,
            reason=e.reason,
        )
    return state


def fold_policy(model_name: str, history: list[RecordedEvent]) -> CaptureState:
    """The capture state of a model from its policy stream."""
    state = CaptureState(model_name)
    for r in history:
        evolve_policy(state, r)
    return state


def policy_row(state: CaptureState) -> list[dict]:
    """The capture_policies row of a state (none before a policy was set)."""
    p = state.policy
    if p is None:
        return []
    return [
        {
            "model_name": p.model_name,
            "fraction": p.fraction,
            "max_per_s": p.max_per_s,
            "retention_days": p.retention_days,
        }
    ]


def _number(value, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InvalidInput(f"{field} must be a number, got {value!r}")
    return float(value)


def check_policy(fraction, max_per_s, retention_days) -> tuple[float, float, int]:
    """Fraction in [0, 1], max_per_s in (0, 10000], retention_days whole in 1..3650."""
    f = _number(fraction, "fraction")
    if not 0.0 <= f <= 1.0:
        raise InvalidInput(f"fraction must be between 0 and 1 (0 stops capture), got {f:g}")
    m = _number(max_per_s, "max_per_s")
    if not 0.0 < m <= MAX_PER_S:
        raise InvalidInput(f"max_per_s must be above 0 and at most {MAX_PER_S:g}, got {m:g}")
    d = retention_days
    if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= MAX_RETENTION_DAYS:
        raise InvalidInput(
            f"retention_days must be a whole number from 1 to {MAX_RETENTION_DAYS}, got {d!r}"
        )
    return f, m, d


def decide_policy(state: CaptureState, event: CapturePolicySet) -> list[Event]:
    """The event a policy change records: none when it repeats the current policy."""
    p = state.policy
    same = p is not None and (p.fraction, p.max_per_s, p.retention_days) == (
        event.fraction,
        event.max_per_s,
        event.retention_days,
    )
    return [] if same else [event]


def check_request_ids(ids: list[str]) -> None:
    """Ids as the API hands them out; InvalidInput naming the first bad one."""
    for rid in ids:
        if not isinstance(rid, str) or not _REQUEST_ID.fullmatch(rid):
            raise InvalidInput(
                f"invalid request_id {rid!r}: request ids are 1-64 chars of A-Z, a-z, 0-9, "
                "'.', '_', ':', '-' (as the X-Request-Id header of an answer)"
            )


class Captured(msgspec.Struct, frozen=True):
    """What feedback needs to know of a captured request: its classes and its label so far."""

    num_classes: int
    label: int | None


def _listed(ids: list[str], limit: int = 20) -> str:
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


def check_feedback(items: list[tuple[str, int]]) -> None:
    """The shape of a feedback request, before anything is read: 1..1000 items, valid ids,
    integer labels, no id twice (400 naming them)."""
    if not items:
        raise InvalidInput("no feedback: send {request_id, label} or a non-empty list of them")
    if len(items) > MAX_FEEDBACK:
        raise InvalidInput(f"at most {MAX_FEEDBACK} labels per request, got {len(items)}")
    ids = [rid for rid, _ in items]
    check_request_ids(ids)
    seen: set[str] = set()
    dup = sorted({rid for rid in ids if rid in seen or seen.add(rid)})
    if dup:
        raise InvalidInput(f"request ids given more than once: {_listed(dup)}")
    for rid, label in items:
        if isinstance(label, bool) or not isinstance(label, int):
            raise InvalidInput(f"label of {rid} must be a class index (integer), got {label!r}")


def judge_feedback(
    items: list[tuple[str, int]], found: dict[str, Captured]
) -> list[tuple[str, int]]:
    """The labels to write; errors name the requests: unknown or expired 404, a label outside
    the model's classes 400, a different label than one given before 409 (the first label
    wins; repeating it changes nothing)."""
    check_feedback(items)
    ids = [rid for rid, _ in items]
    missing = [rid for rid in ids if rid not in found]
    if missing:
        raise NotFound(
            f"no captured request (never captured, or expired past its retention): {_listed(missing)}"
        )
    bad = [
        f"{rid} (label {lb}, classes 0..{found[rid].num_classes - 1})"
        for rid, lb in items
        if not 0 <= lb < found[rid].num_classes
    ]
    if bad:
        raise InvalidInput(f"label outside the model's classes: {_listed(bad)}")
    changed = [
        f"{rid} (labelled {found[rid].label}, now {lb})"
        for rid, lb in items
        if found[rid].label is not None and found[rid].label != lb
    ]
    if changed:
        raise Conflict(f"already labelled differently (the first label stands): {_listed(changed)}")
    return [(rid, lb) for rid, lb in items if found[rid].label is None]


def traffic_dataset_name(dataset_id: str) -> str:
    """``traffic:<name>`` (or a bare name) -> name, or InvalidInput."""
    name = dataset_id.removeprefix(TRAFFIC_DATASET_PREFIX) if isinstance(dataset_id, str) else ""
    if not _DATASET_NAME.fullmatch(name) or ".." in name:
        raise InvalidInput(
            f"invalid traffic dataset id {dataset_id!r}: use traffic:<name>, name 1-64 chars of "
            "a-z, 0-9, '_', '.', '-' starting with a letter or digit, e.g. traffic:week-49"
        )
    return name


def is_traffic_dataset(dataset_id: str) -> bool:
    """Whether an id names frozen traffic (``traffic:<name>``)."""
    return isinstance(dataset_id, str) and dataset_id.startswith(TRAFFIC_DATASET_PREFIX)
