"""Gate policy rules: valid thresholds, and whether a promotion is cleared by a gate.

Which gates count (dataset, size, a standing FAIL) is decided in ``domain.registry.gate_evidence``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from domain.errors import Conflict, Forbidden, InvalidInput
from domain.registry.gate_evidence import (
    GateOutcome,
    counting_pass,
    required_dataset,
    why_no_pass,
)
from events.gates import GatePolicy, GateThresholds
from events.keys import ROLES

MAX_GATE_AGE_S = 365 * 86400
MAX_REQUEST_AGE_S = 7 * 86400
MAX_APPROVALS = 5
__all__ = ["Clearance", "GateOutcome", "check_policy", "check_promotion_allowed", "fresh_pass"]


@dataclass(frozen=True)
class Clearance:
    """Why a promotion may go ahead: the fresh PASS gate it rests on, or a forced override."""

    gate_id: str | None
    forced: bool


def check_thresholds(t: GateThresholds) -> GateThresholds:
    """Return ``t`` if every threshold is in range, else raise InvalidInput naming it."""
    _in_range("max_accuracy_drop", t.max_accuracy_drop, 0.0, 1.0)
    _in_range("max_latency_increase", t.max_latency_increase, 0.0, 100.0)
    if not (_finite(t.alpha) and 0.0 < t.alpha <= 0.25):
        raise InvalidInput(f"alpha (one-sided) must be above 0 and at most 0.25, got {t.alpha!r}")
    _whole("min_images", t.min_images, 0, 10**9)
    return t


def check_policy(policy: GatePolicy) -> GatePolicy:
    """Return ``policy`` if valid, else raise InvalidInput naming the bad field."""
    check_thresholds(policy.thresholds)
    age = policy.max_gate_age_s
    if isinstance(age, bool) or not isinstance(age, int) or not 1 <= age <= MAX_GATE_AGE_S:
        raise InvalidInput(f"max_gate_age_s must be 1..{MAX_GATE_AGE_S} seconds, got {age!r}")
    _whole("min_gate_images", policy.min_gate_images, 0, 10**9)
    _whole("approvals_required", policy.approvals_required, 1, MAX_APPROVALS)
    _whole("max_request_age_s", policy.max_request_age_s, 60, MAX_REQUEST_AGE_S)
    if policy.on_inconclusive not in ("block", "allow"):
        raise InvalidInput(
            f"on_inconclusive must be block or allow, got {policy.on_inconclusive!r}"
        )
    if policy.force_role not in ROLES[2:]:
        raise InvalidInput(
            f"force_role must be one of {', '.join(ROLES[2:])}, got {policy.force_role!r}"
        )
    if policy.gate_dataset is not None and not (
        isinstance(policy.gate_dataset, str) and 0 < len(policy.gate_dataset.strip()) <= 200
    ):
        raise InvalidInput(
            f"gate_dataset must be a dataset id such as fashion_mnist_10000, got "
            f"{policy.gate_dataset!r}"
        )
    return policy


def check_force_role(policy: GatePolicy, model_name: str, role: str | None) -> None:
    """Raise Forbidden unless ``role`` may force past ``policy`` (None: the CLI, with database
    rights, which no role check can bind)."""
    if role is None or (role in ROLES and ROLES.index(role) >= ROLES.index(policy.force_role)):
        return
    raise Forbidden(
        f"forcing a promotion of {model_name} past its gate policy needs role "
        f"{policy.force_role} (the policy's force_role); this key has role {role}"
    )


def fresh_pass(
    policy: GatePolicy,
    model_name: str,
    candidate: str,
    baseline: str,
    gates: list[GateOutcome] | tuple[GateOutcome, ...],
    now: datetime,
    reference: str | None = None,
) -> GateOutcome | None:
    """The newest PASS of exactly this candidate against this baseline that counts: young enough,
    on the policy's dataset and size, and not overruled by a FAIL on as many images."""
    required = required_dataset(policy, reference)
    return counting_pass(policy, required, model_name, candidate, baseline, gates, now)


def check_promotion_allowed(
    policy: GatePolicy,
    model_name: str,
    candidate: str,
    current_prod: str | None,
    gates: list[GateOutcome] | tuple[GateOutcome, ...],
    now: datetime | None,
    force: bool = False,
    reason: str | None = None,
    gate_id: str | None = None,
    role: str | None = None,
    reference: str | None = None,
) -> Clearance:
    """Clear a promotion of ``candidate`` over ``current_prod``, or raise Conflict saying why.

    With ``require_gate``, a promotion needs a PASS of this exact candidate against the current
    prod, younger than ``max_gate_age_s``. ``force`` overrides that, and needs a reason.
    A promotion that names its cause (``gate_id``, auto-promotion) needs that gate to be such a
    PASS whatever the policy: a gate against a prod that has since changed proves nothing.
    ``reference`` is the model's reference dataset (the policy's gate_dataset overrides it);
    ``role`` is the caller's, checked against the policy's force_role when forcing.
    """
    if force and not (reason or "").strip():
        raise InvalidInput("a forced promotion needs a reason (--force --reason '...')")
    if force:
        check_force_role(policy, model_name, role)
    if current_prod is None or current_prod == candidate:
        return Clearance(gate_id=gate_id, forced=force)
    if now is None:
        gates = ()  # without the time no gate can be judged fresh
    if gate_id is not None and not force:
        named = [g for g in gates if g.gate_id == gate_id]
        others = [g for g in gates if g.gate_id != gate_id]
        if not named or (
            fresh_pass(
                policy, model_name, candidate, current_prod, [*named, *others], now, reference
            )
            not in named
        ):
            why = _why_not(
                policy, reference, model_name, candidate, current_prod, gates, now, named
            )
            raise Conflict(
                f"gate {gate_id} is not a fresh PASS of {model_name} {candidate} against the "
                f"current prod {current_prod} that counts; {why}"
                f"{_how_to(model_name, candidate, current_prod)}"
            )
        return Clearance(gate_id=gate_id, forced=False)
    found = fresh_pass(policy, model_name, candidate, current_prod, gates, now, reference)
    if found is not None:
        return Clearance(gate_id=found.gate_id, forced=force)
    if force or not policy.require_gate:
        return Clearance(gate_id=gate_id, forced=force)
    raise Conflict(
        f"promoting {model_name} {candidate} needs a PASS gate of {candidate} against prod "
        f"{current_prod} younger than {_age(policy.max_gate_age_s)} (the model's policy has "
        f"require_gate on); {_why_not(policy, reference, model_name, candidate, current_prod, gates, now)}"
        f"{_how_to(model_name, candidate, current_prod)}"
    )


def _why_not(
    policy: GatePolicy,
    reference: str | None,
    model_name: str,
    candidate: str,
    prod: str,
    gates: list[GateOutcome] | tuple[GateOutcome, ...],
    now: datetime,
    subject: list[GateOutcome] | None = None,
) -> str:
    """Say what the closest gate (of ``subject``, else of ``gates``) was, so a user sees why it
    does not count; a FAIL among all ``gates`` may be the reason."""
    among = gates if subject is None else subject
    mine = [g for g in among if g.model_name == model_name and g.candidate_version == candidate]
    if not mine:
        return f"there is no gate of {candidate}; "
    latest = max(mine, key=lambda g: g.decided_at)
    if latest.baseline_version != prod:
        return (
            f"its latest gate {latest.gate_id} compared it to {latest.baseline_version}, "
            f"not to the current prod {prod}; "
        )
    return why_no_pass(policy, required_dataset(policy, reference), latest, gates, now)


def _how_to(model_name: str, candidate: str, prod: str) -> str:
    return (
        f"run `just gate {model_name} {candidate} {prod}`, "
        "or promote with --force --reason '...' to override"
    )


def _age(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds:.0f}s"


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _in_range(name: str, x: float, low: float, high: float) -> None:
    if not (_finite(x) and low <= x <= high):
        raise InvalidInput(f"{name} must be between {low:g} and {high:g}, got {x!r}")


def _whole(name: str, x: object, low: int, high: int) -> None:
    if isinstance(x, bool) or not isinstance(x, int) or not low <= x <= high:
        raise InvalidInput(f"{name} must be a whole number {low}..{high}, got {x!r}")
