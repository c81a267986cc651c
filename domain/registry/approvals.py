"""Promotions under the gate policy: cleared by a gate or forced, and with four eyes a request
that a second key approves before the version becomes prod."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import msgspec

from domain.errors import Conflict, Forbidden, InvalidInput
from domain.registry.commands import ApprovePromotion, PromoteModelVersion
from domain.registry.gate_policy import Clearance, check_promotion_allowed
from domain.registry.reference import reference_dataset
from domain.registry.state import ModelState, PendingPromotion, VersionState
from events.base import Event
from events.registry import ModelVersionPromoted, PromotionApproved, PromotionRequested


def reference_dataset_of(state: ModelState, version: str) -> str | None:
    """The dataset a version's gates must use by default: the one it was registered as trained on,
    else the one the model's other versions name, newest first (domain.registry.reference); the
    policy's gate_dataset, when set, overrides it in the promotion rule, matched exactly."""
    v = state.versions.get(version)
    if v is None:
        return None
    newest = sorted(state.versions.values(), key=lambda o: o.created_at, reverse=True)
    others = [o.metadata.dataset for o in newest if o.model_version != version]
    return reference_dataset(v.metadata.dataset, others=others)


def promote(
    state: ModelState, v: VersionState, cmd: PromoteModelVersion, reason: str | None
) -> list[Event]:
    """The promotion, once the policy clears it; with four eyes, a request for approvals.
    A canary that passed every step on live traffic clears it as a gate PASS would (and, with
    four eyes, still waits for another key's approval: a canary is one person's decision)."""
    canary = cmd.canary_id is not None and state.prod is not None
    clearance = (
        Clearance(gate_id=None, forced=False)
        if canary
        else check_promotion_allowed(
            state.policy,
            state.model_name,
            v.model_version,
            state.prod,
            cmd.gates,
            cmd.now,
            force=cmd.force,
            reason=reason,
            gate_id=cmd.gate_id,
            role=cmd.role,
            reference=reference_dataset_of(state, v.model_version),
        )
    )
    needed = state.policy.approvals_required
    if needed <= 1 or state.prod is None:
        # The first prod of a model is the one promotion no one can gate or approve against.
        return [_promoted(state, v.model_version, clearance, reason, cmd.canary_id)]
    if cmd.now is None:
        raise InvalidInput("a promotion request needs the time (the handler's clock)")
    pending = state.requests.get(v.model_version)
    if pending is not None and cmd.now <= pending.expires_at:
        if pending.requested_by == cmd.metadata.actor:
            return []  # a repeated request is the same request
        raise Conflict(
            f"{state.model_name} {v.model_version} already has a pending promotion request "
            f"{pending.request_id} by {pending.requested_by}; approve it with "
            f"`just approve {state.model_name} {v.model_version} --reason '...'`"
        )
    return [
        PromotionRequested(
            model_name=state.model_name,
            model_version=v.model_version,
            request_id=str(uuid.uuid4()),
            approvals_required=needed,
            expires_at=cmd.now + timedelta(seconds=state.policy.max_request_age_s),
            reason=reason,
            forced=clearance.forced,
            gate_id=clearance.gate_id,
            canary_id=cmd.canary_id if canary else None,
            canary_prod=state.prod if canary else None,
        )
    ]


def approve(
    state: ModelState, v: VersionState, cmd: ApprovePromotion, reason: str | None
) -> list[Event]:
    """An approval of the pending request; the last one needed also promotes, naming everyone.

    The requester cannot approve; nor can one key approve twice; an expired request is refused.
    The gate clearance is checked again (prod may have moved since the request).
    """
    pending = state.requests.get(v.model_version)
    who = f"{state.model_name} {v.model_version}"
    if pending is None:
        raise Conflict(
            f"{who} has no pending promotion request; `just promote {state.model_name} "
            f"{v.model_version} --reason '...'` opens one"
        )
    if cmd.now is None or cmd.now > pending.expires_at:
        raise Conflict(
            f"the promotion request {pending.request_id} of {who} by {pending.requested_by} "
            f"expired at {pending.expires_at:%Y-%m-%d %H:%M:%S} UTC (the policy's "
            "max_request_age_s); request the promotion again"
        )
    actor = cmd.metadata.actor
    if actor == pending.requested_by:
        raise Forbidden(
            f"{actor} requested the promotion of {who}; four eyes: another key must approve it"
        )
    if actor in pending.approved_by:
        raise Conflict(f"{actor} already approved the promotion request of {who}")
    approved = PromotionApproved(
        model_name=state.model_name,
        model_version=v.model_version,
        request_id=pending.request_id,
        requested_by=pending.requested_by,
        reason=reason,
    )
    approvers = [*pending.approved_by, actor]
    if 1 + len(approvers) < pending.approvals_required:
        return [approved]
    if pending.canary_id is not None:
        if state.prod != pending.canary_prod:
            raise Conflict(
                f"canary {pending.canary_id[:8]} compared {v.model_version} against prod "
                f"{pending.canary_prod}, but prod is now {state.prod}; run the canary again"
            )
        canary = Clearance(gate_id=None, forced=False)
        promoted = _promoted(state, v.model_version, canary, pending.reason, pending.canary_id)
        return [approved, _with_approvals(promoted, pending, approvers)]
    clearance = check_promotion_allowed(
        state.policy,
        state.model_name,
        v.model_version,
        state.prod,
        cmd.gates,
        cmd.now,
        force=pending.forced,
        reason=pending.reason,
        role=None,  # the requester's role was checked when the request was made
        reference=reference_dataset_of(state, v.model_version),
    )
    promoted = _promoted(state, v.model_version, clearance, pending.reason)
    return [approved, _with_approvals(promoted, pending, approvers)]


def _promoted(
    state: ModelState,
    version: str,
    clearance: Clearance,
    reason: str | None,
    canary_id: str | None = None,
) -> ModelVersionPromoted:
    return ModelVersionPromoted(
        model_name=state.model_name,
        model_version=version,
        previous_prod=state.prod,
        reason=reason,
        forced=clearance.forced,
        force_reason=reason if clearance.forced else None,
        gate_id=clearance.gate_id,
        canary_id=canary_id,
    )


def _with_approvals(
    e: ModelVersionPromoted, pending: PendingPromotion, approvers: list[str]
) -> ModelVersionPromoted:
    return msgspec.structs.replace(e, requested_by=pending.requested_by, approved_by=approvers)


def pending_requests(state: ModelState, now: datetime) -> list[PendingPromotion]:
    """The model's requests still open at ``now``, oldest first."""
    open_ = [r for r in state.requests.values() if now <= r.expires_at]
    return sorted(open_, key=lambda r: r.requested_at)


class PromotionRequestView(msgspec.Struct, frozen=True, kw_only=True):
    """A pending promotion request as the console lists it."""

    model_name: str
    model_version: str
    request_id: str
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    approvals_required: int
    approved_by: list[str]
    prod: str | None
    reason: str | None = None
    forced: bool = False


def request_views(state: ModelState, now: datetime) -> list[PromotionRequestView]:
    """The model's open requests (oldest first) as views."""
    return [
        PromotionRequestView(
            model_name=state.model_name,
            model_version=r.model_version,
            request_id=r.request_id,
            requested_by=r.requested_by,
            requested_at=r.requested_at,
            expires_at=r.expires_at,
            approvals_required=r.approvals_required,
            approved_by=list(r.approved_by),
            prod=state.prod,
            reason=r.reason,
            forced=r.forced,
        )
        for r in pending_requests(state, now)
    ]
