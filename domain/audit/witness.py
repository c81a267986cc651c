"""A witness's decisions: cosign a checkpoint only when it extends the last one it cosigned.

The witness remembers one thing, the last checkpoint it cosigned (origin, size, root). A new
checkpoint is refused when its origin changed, when it is smaller (a truncated log), when it
has the same size and another root (a split view: two histories for one size), or when the
log's consistency proof does not show the old tree to be a prefix of the new one (a rewritten
entry). Pure code, no I/O: the process (cli/witness.py) fetches, signs, posts and saves.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from domain.audit.merkle import ProofError, verify_consistency
from domain.audit.note import Checkpoint, NoteError, Verifier, open_checkpoint, split_note

# Refusal kinds: each one is a log that is not the one the witness vouched for.
ORIGIN_CHANGED = "origin_changed"
TRUNCATED = "truncated"
SPLIT_VIEW = "split_view"
REWRITTEN = "rewritten"
BAD_SIGNATURE = "bad_signature"
KEY_CHANGED = "key_changed"


class WitnessError(ValueError):
    """A state file or key the witness cannot use (a setup problem, not a refusal)."""


@dataclass(frozen=True)
class WitnessState:
    """The last checkpoint cosigned, and the log key pinned on first use (a vkey line)."""

    origin: str
    size: int
    root: bytes
    log_key: str | None = None

    def to_dict(self) -> dict:
        """The state as JSON-ready values (the root in standard base64)."""
        return {
            "origin": self.origin,
            "size": self.size,
            "root": base64.b64encode(self.root).decode(),
            "log_key": self.log_key,
        }

    @classmethod
    def from_dict(cls, raw: object) -> WitnessState:
        """Read a state written by ``to_dict``; WitnessError names what is wrong."""
        if not isinstance(raw, dict):
            raise WitnessError("the witness state is not a JSON object")
        origin, size, root, key = (raw.get(k) for k in ("origin", "size", "root", "log_key"))
        if not isinstance(origin, str) or not origin:
            raise WitnessError("the witness state has no origin")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise WitnessError("the witness state's size is not a whole number >= 0")
        try:
            root_bytes = base64.b64decode(root, validate=True) if isinstance(root, str) else b""
        except binascii.Error:
            root_bytes = b""
        if len(root_bytes) != 32:
            raise WitnessError("the witness state's root is not 32 bytes of base64")
        if key is not None and not isinstance(key, str):
            raise WitnessError("the witness state's log_key is not a key line")
        return cls(origin, size, root_bytes, key)


@dataclass(frozen=True)
class Cosign:
    """Sign this checkpoint: it extends the last one (or is the first seen)."""

    checkpoint: Checkpoint
    first_contact: bool = False


@dataclass(frozen=True)
class Unchanged:
    """The checkpoint already cosigned: nothing to do."""

    checkpoint: Checkpoint


@dataclass(frozen=True)
class Refuse:
    """Do not cosign; ``kind`` is one of the refusal kinds above, ``reason`` says it in words."""

    kind: str
    reason: str


Decision = Cosign | Unchanged | Refuse


def read_note(note: str, log_key: Verifier) -> tuple[Checkpoint, str] | Refuse:
    """The checkpoint and its exact body if the log's key signed ``note``, else a refusal."""
    try:
        checkpoint, _ = open_checkpoint(note, log_key)
        body, _ = split_note(note)
    except NoteError as exc:
        return Refuse(BAD_SIGNATURE, f"the checkpoint note does not verify: {exc}")
    return checkpoint, body


def proof_needed(state: WitnessState | None, checkpoint: Checkpoint) -> tuple[int, int] | None:
    """The (from, to) sizes of the consistency proof to fetch before deciding, or None."""
    if state is None or state.origin != checkpoint.origin:
        return None
    if 0 < state.size < checkpoint.size:
        return state.size, checkpoint.size
    return None


def decide(
    state: WitnessState | None, checkpoint: Checkpoint, proof: Sequence[bytes] | None = None
) -> Decision:
    """Whether to cosign ``checkpoint`` given the last cosigned state and, when growing, the
    consistency proof from the state's size to the checkpoint's (see ``proof_needed``)."""
    if state is None:
        return Cosign(checkpoint, first_contact=True)
    if checkpoint.origin != state.origin:
        return Refuse(
            ORIGIN_CHANGED,
            f"the checkpoint's origin is {checkpoint.origin!r}, the witness follows {state.origin!r}",
        )
    old, new = state.size, checkpoint.size
    if new < old:
        return Refuse(
            TRUNCATED, f"the log shrank from {old} to {new} entries: it was truncated or rewritten"
        )
    if new == old:
        if checkpoint.root != state.root:
            return Refuse(
                SPLIT_VIEW,
                f"two different roots for size {new}: the log shows another history than it "
                "showed before (a split view)",
            )
        return Unchanged(checkpoint)
    if old == 0:  # the empty tree is a prefix of every tree
        return Cosign(checkpoint)
    if proof is None:
        raise ValueError(f"a consistency proof from {old} to {new} is needed to decide")
    try:
        verify_consistency(old, new, state.root, checkpoint.root, proof)
    except ProofError as exc:
        return Refuse(
            REWRITTEN,
            f"the tree of size {new} does not extend the cosigned tree of size {old} ({exc}): "
            "an entry was rewritten, removed or reordered",
        )
    return Cosign(checkpoint)


def after(state: WitnessState | None, decision: Cosign, log_key: str | None) -> WitnessState:
    """The state to save once ``decision``'s cosignature is posted."""
    cp = decision.checkpoint
    return WitnessState(cp.origin, cp.size, cp.root, log_key or (state.log_key if state else None))


@dataclass(frozen=True)
class KeyChoice:
    """The log key to verify with, and whether it is pinned now (trust on first use)."""

    key: Verifier
    pin: bool
    trusted_on_first_use: bool


def choose_log_key(
    pinned: str | None, given: str | None, offered: str | None
) -> KeyChoice | Refuse:
    """The key that must sign checkpoints: ``given`` (--log-key) or ``pinned`` (state), which
    must agree; else ``offered`` (what the log publishes), trusted on first use."""
    try:
        pinned_key = Verifier.parse(pinned) if pinned else None
        given_key = Verifier.parse(given) if given else None
    except NoteError as exc:
        raise WitnessError(f"log key: {exc}") from None
    if given_key and pinned_key and given_key != pinned_key:
        return Refuse(
            KEY_CHANGED,
            f"--log-key {given_key.vkey()} differs from the key pinned in the state "
            f"{pinned_key.vkey()}: the log's key changed (or the wrong file was given)",
        )
    if given_key:
        return KeyChoice(given_key, pin=pinned_key is None, trusted_on_first_use=False)
    if pinned_key:
        return KeyChoice(pinned_key, pin=False, trusted_on_first_use=False)
    if not offered:
        raise WitnessError("no log key: give --log-key FILE (the line `just audit-key` prints)")
    try:
        offered_key = Verifier.parse(offered)
    except NoteError as exc:
        raise WitnessError(f"the log's published key: {exc}") from None
    return KeyChoice(offered_key, pin=True, trusted_on_first_use=True)
