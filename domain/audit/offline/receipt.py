"""A promotion receipt: pick its three events (pure), and check one offline with public keys."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from domain.audit.leaf import LeafError, decode_leaf
from domain.audit.note import Checkpoint, Verifier
from domain.audit.offline.bundle import Entry, Receipt
from domain.audit.offline.trail import NotVerified, check_inclusion, open_note, recorded
from events.base import RecordedEvent
from events.gates import INCONCLUSIVE, PASS, GateEvaluated
from events.registry import ModelVersionPromoted, ModelVersionRegistered


@dataclass(frozen=True)
class ReceiptEvents:
    """The log rows a receipt proves: registration, the clearing gate verdict, the promotion."""

    registration: RecordedEvent
    gate: RecordedEvent | None
    promotion: RecordedEvent


def pick_events(
    name: str, version: str, model_events: list[RecordedEvent], verdicts: list[RecordedEvent]
) -> ReceiptEvents | None:
    """The latest promotion of ``version``, its registration, and the gate verdict that cleared
    it: the gate the promotion names, else the latest PASS of the version before it. None when
    the version was never promoted."""
    registration = promotion = None
    for r in model_events:
        e = r.event
        if isinstance(e, ModelVersionRegistered) and e.model_version == version:
            registration = r
        elif isinstance(e, ModelVersionPromoted) and e.model_version == version:
            promotion = r
    if registration is None or promotion is None:
        return None
    named = promotion.event.gate_id
    gate = None
    for r in verdicts:
        e = r.event
        if not isinstance(e, GateEvaluated) or r.position > promotion.position:
            continue
        if named is not None:
            if e.gate_id == named:
                gate = r
        elif e.model_name == name and e.candidate_version == version and e.verdict == PASS:
            gate = r
    return ReceiptEvents(registration, gate, promotion)


@dataclass(frozen=True)
class VerifiedReceipt:
    """What a receipt proved."""

    checkpoint: Checkpoint
    cosigners: list[str]
    events: ReceiptEvents
    artifact_matches: bool | None  # None when no artifact was given


def _proven(what: str, e: Entry, cp: Checkpoint) -> RecordedEvent:
    try:
        row = decode_leaf(e.leaf_data)
    except LeafError as exc:
        raise NotVerified(f"{what} (leaf {e.index}): {exc}") from None
    try:
        check_inclusion(e, row, cp)
    except NotVerified as exc:
        raise NotVerified(f"{what}: {exc}") from None
    return recorded(row)


def verify_receipt(
    receipt: Receipt,
    log_key: Verifier,
    witnesses: list[Verifier] = (),
    artifact_sha256: str | None = None,
) -> VerifiedReceipt:
    """Check the signatures, the three proofs and what the events say; NotVerified names the
    first failure."""
    cp, cosigners = open_note(receipt.checkpoint, log_key, witnesses)
    if receipt.origin != cp.origin:
        raise NotVerified(
            f"the receipt says origin {receipt.origin!r}, its checkpoint {cp.origin!r}"
        )
    name, version = receipt.model_name, receipt.model_version
    reg = _proven("the registration", receipt.registration, cp)
    gate = _proven("the gate verdict", receipt.gate, cp) if receipt.gate else None
    promo = _proven("the promotion", receipt.promotion, cp)
    about = f"about {name} {version}"
    r, p = reg.event, promo.event
    if not isinstance(r, ModelVersionRegistered) or (r.model_name, r.model_version) != (
        name,
        version,
    ):
        raise NotVerified(f"the registration event is a {type(r).__name__} not {about}")
    if not isinstance(p, ModelVersionPromoted) or (p.model_name, p.model_version) != (
        name,
        version,
    ):
        raise NotVerified(f"the promotion event is a {type(p).__name__} not {about}")
    if r.sha256 != receipt.artifact_sha256:
        raise NotVerified(
            f"the receipt's artifact sha256 {receipt.artifact_sha256} is not the registered "
            f"{r.sha256}"
        )
    order = [reg, gate, promo] if gate else [reg, promo]
    if any(a.position >= b.position for a, b in itertools.pairwise(order)):
        raise NotVerified("the events are not in order: registration, gate verdict, promotion")
    if gate is None:
        if p.gate_id is not None:
            raise NotVerified(f"the promotion names gate {p.gate_id}; its verdict is missing")
    else:
        _check_gate(gate, p, name, version)
    matches = None
    if artifact_sha256 is not None:
        matches = artifact_sha256.lower() == r.sha256.lower()
        if not matches:
            raise NotVerified(
                f"the artifact's sha256 {artifact_sha256} is not the registered {r.sha256}"
            )
    return VerifiedReceipt(cp, cosigners, ReceiptEvents(reg, gate, promo), matches)


def _check_gate(gate: RecordedEvent, p: ModelVersionPromoted, name: str, version: str) -> None:
    g = gate.event
    if not isinstance(g, GateEvaluated) or (g.model_name, g.candidate_version) != (name, version):
        raise NotVerified(
            f"the gate verdict event is a {type(g).__name__} not about {name} {version}"
        )
    # An INCONCLUSIVE clears a promotion only under on_inconclusive allow, and then the
    # promotion names it; the verdict is printed, so the receipt hides nothing.
    named_inconclusive = g.verdict == INCONCLUSIVE and p.gate_id == g.gate_id
    if g.verdict != PASS and not named_inconclusive:
        raise NotVerified(f"gate {g.gate_id}'s verdict is {g.verdict}, not {PASS}")
    if p.gate_id is not None and p.gate_id != g.gate_id:
        raise NotVerified(f"the promotion names gate {p.gate_id}, the verdict is gate {g.gate_id}")
