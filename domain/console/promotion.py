"""What the console's promote page says before and after a promotion: whether the model's policy
requires a gate, the candidate's latest gate against prod, what a promotion now would meet (the
same rule the promotion runs), and, when it is blocked, what to do in the console."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from domain.errors import Conflict, Forbidden, InvalidInput
from domain.keys.aggregate import role_allows
from domain.registry.approvals import reference_dataset_of
from domain.registry.gate_evidence import GateOutcome
from domain.registry.gate_policy import check_promotion_allowed
from domain.registry.state import ModelState

VERDICT_CLASS = {"PASS": "verdict-pass", "FAIL": "verdict-fail", "ERRORED": "verdict-error"}
MAX_FORCERS = 5  # names shown to ask; the rest are "…"


@dataclass(frozen=True, kw_only=True)
class GateStatus:
    """The gate side of a promotion of ``candidate`` over ``prod``, as the promote page shows it."""

    model_name: str
    candidate: str
    prod: str | None
    required: bool
    max_age_h: float
    dataset: str | None
    min_images: int
    latest: GateOutcome | None  # the candidate's newest gate against the current prod
    elsewhere: GateOutcome | None  # its newest gate against another baseline, when none is
    cleared_by: str | None  # the gate a promotion now would rest on
    refusal: str | None  # why a promotion now would be refused, in the console's words
    force_role: str
    can_force: bool
    forcers: list[str] = field(default_factory=list)
    approvals: int = 1

    @property
    def verdict_class(self) -> str:
        """The badge class of the latest gate's verdict."""
        return VERDICT_CLASS.get(self.latest.verdict, "") if self.latest else ""

    def advice(self, role: str | None) -> str:
        """What a blocked viewer can do from the console (or whom to ask)."""
        gate = f"`just gate {self.model_name} {self.candidate} {self.prod}`"
        run = f"Run a gate of {self.candidate} against {self.prod} ({gate}) and promote once it passes"
        if self.can_force:
            return (
                f"{run}; or, to promote anyway, tick “Force past the gate policy” below and give "
                "the reason: it is recorded as an override."
            )
        ask = ", ".join(self.forcers[:MAX_FORCERS]) + (
            "…" if len(self.forcers) > MAX_FORCERS else ""
        )
        who = f" ({ask})" if ask else ""
        return (
            f"{run}. Only a key with role {self.force_role} may force past it (the policy's "
            f"force_role) and yours has role {role or 'none'}: ask a {self.force_role}{who} to "
            "force it from this page, with the reason."
        )


def gate_status(
    state: ModelState,
    candidate: str,
    outcomes: Sequence[GateOutcome],
    now: datetime,
    role: str | None,
    forcers: Sequence[str] = (),
) -> GateStatus:
    """The promote page's account of the gate, judged by the promotion's own rule."""
    policy, prod = state.policy, state.prod
    reference = reference_dataset_of(state, candidate)
    mine = sorted(
        (g for g in outcomes if g.candidate_version == candidate),
        key=lambda g: g.decided_at,
        reverse=True,
    )
    latest = next((g for g in mine if g.baseline_version == prod), None)
    cleared_by, refusal = None, None
    try:
        clearance = check_promotion_allowed(
            policy, state.model_name, candidate, prod, list(mine), now, reference=reference
        )
        cleared_by = clearance.gate_id
    except (Conflict, Forbidden, InvalidInput) as exc:
        refusal = without_cli_advice(str(exc))
    return GateStatus(
        model_name=state.model_name,
        candidate=candidate,
        prod=prod,
        required=policy.require_gate,
        max_age_h=policy.max_gate_age_s / 3600,
        dataset=policy.gate_dataset or reference,
        min_images=policy.min_gate_images,
        latest=latest,
        elsewhere=None if latest else next(iter(mine), None),
        cleared_by=cleared_by,
        refusal=refusal,
        force_role=policy.force_role,
        can_force=bool(role and role_allows(role, policy.force_role)),
        forcers=list(forcers),
        approvals=policy.approvals_required,
    )


def without_cli_advice(message: str) -> str:
    """A refusal without its advice for the command line (``--force --reason``, ``just ...``),
    which the console replaces with its own."""
    kept = [p for p in message.split("; ") if "--force" not in p and "`just " not in p]
    return "; ".join(p.rstrip("; ") for p in kept if p.strip()) or message


def refusal_message(exc: Exception, status: GateStatus, role: str | None) -> str:
    """A refused promotion as the console says it: why, then what to do here."""
    why = without_cli_advice(str(exc))
    if isinstance(exc, Forbidden) or (isinstance(exc, Conflict) and status.refusal):
        return f"{why}. {status.advice(role)}"
    return why
