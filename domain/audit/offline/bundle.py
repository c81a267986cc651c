"""The offline formats: a trail bundle and a promotion receipt, JSON through msgspec.

Both carry one signed checkpoint note and log entries as (leaf index, leaf data); bytes travel
as standard base64. Nothing in them is trusted: the verifier checks every byte against the
checkpoint, which it checks against the public keys it is given.
"""

from __future__ import annotations

import msgspec

TRAIL_FORMAT = "inference-platform/trail-bundle/v1"
RECEIPT_FORMAT = "inference-platform/promotion-receipt/v1"


class FormatError(ValueError):
    """A file that is not a bundle or receipt of a format this verifier reads."""


class Entry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One log entry: its leaf index in the tree, its leaf data, and its inclusion proof
    (absent in a complete export, where the verifier rebuilds the whole tree)."""

    index: int
    leaf_data: bytes
    proof: list[bytes] | None = None


class TrailBundle(msgspec.Struct, frozen=True, kw_only=True):
    """`just export-trail`: entries of the log under one signed checkpoint.

    ``complete``: the entries are the leaves 0..n-1, and ``consistency`` proves that tree a
    prefix of the checkpoint's (empty when n is the checkpoint's size). Otherwise the entries
    are a selection (``model``), each with its inclusion proof.
    """

    origin: str
    log_key: str  # the log key's name: a label, the verifier uses the key file it is given
    checkpoint: str  # the signed note: body, blank line, signature and cosignature lines
    complete: bool
    entries: list[Entry]
    consistency: list[bytes] = msgspec.field(default_factory=list)
    model: str | None = None
    to_position: int | None = None
    format: str = TRAIL_FORMAT


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """`just receipt`: the registration, the gate verdict that cleared it (None when the
    promotion named no gate and no PASS of the version exists) and the promotion, each with its
    inclusion proof into one checkpoint, and the artifact's sha256 as registered."""

    model_name: str
    model_version: str
    artifact_sha256: str
    origin: str
    log_key: str
    checkpoint: str
    registration: Entry
    gate: Entry | None
    promotion: Entry
    format: str = RECEIPT_FORMAT


def encode(doc: TrailBundle | Receipt) -> bytes:
    """The document as JSON."""
    return msgspec.json.encode(doc)


class _Head(msgspec.Struct):
    format: object = None


def _decode(data: bytes, kind: type, fmt: str, what: str):
    try:
        head = msgspec.json.decode(data, type=_Head)  # other fields are skipped, not built
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FormatError(f"not a JSON {what}: {exc}") from None
    if head.format != fmt:
        raise FormatError(f"not a {what}: its format is {head.format!r}, expected {fmt!r}")
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as exc:
        raise FormatError(f"malformed {what}: {exc}") from None


def decode_bundle(data: bytes) -> TrailBundle:
    """A trail bundle from JSON; FormatError says what is wrong."""
    return _decode(data, TrailBundle, TRAIL_FORMAT, "trail bundle")


def decode_receipt(data: bytes) -> Receipt:
    """A promotion receipt from JSON; FormatError says what is wrong."""
    return _decode(data, Receipt, RECEIPT_FORMAT, "promotion receipt")
