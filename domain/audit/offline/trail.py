"""Check a trail bundle against public keys, then fold what it proves into a model's history.

Every field shown comes from the verified leaf data, never from the bundle's other fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec

from domain.audit.leaf import LeafError, LeafRow, decode_leaf
from domain.audit.merkle import ProofError, leaf_hash, root_of, verify_consistency, verify_inclusion
from domain.audit.note import Checkpoint, NoteError, Verifier, open_checkpoint
from domain.audit.offline.bundle import Entry, TrailBundle
from domain.audit.reports import ModelAt, TrailEntry, model_at, trail_from_parts
from events.base import RecordedEvent
from events.codec import encode_event, schema_version_of
from events.streams import MODEL_STREAM_PREFIX, model_stream_id


class NotVerified(Exception):
    """The first check a bundle or receipt failed, in one line."""


def open_note(
    note: str, log_key: Verifier, witnesses: list[Verifier] = ()
) -> tuple[Checkpoint, list[str]]:
    """The checkpoint, if the log key signed it and every given witness cosigned it."""
    try:
        checkpoint, cosigners = open_checkpoint(note, log_key, list(witnesses))
    except NoteError as exc:
        raise NotVerified(f"checkpoint: {exc}") from None
    missing = [w.name for w in witnesses if w.name not in cosigners]
    if missing:
        raise NotVerified(
            f"checkpoint of size {checkpoint.size}: no valid cosignature by witness "
            f"{', '.join(missing)}"
        )
    return checkpoint, cosigners


@dataclass(frozen=True)
class VerifiedTrail:
    """What a bundle proved: its checkpoint, who cosigned it, and the rows of its entries."""

    checkpoint: Checkpoint
    cosigners: list[str]
    rows: list[LeafRow]
    complete: bool


def verify_trail(
    bundle: TrailBundle, log_key: Verifier, witnesses: list[Verifier] = ()
) -> VerifiedTrail:
    """Check signatures, order, leaves and the root (or each proof); NotVerified names the first
    failure."""
    cp, cosigners = open_note(bundle.checkpoint, log_key, witnesses)
    if bundle.origin != cp.origin:
        raise NotVerified(f"the bundle says origin {bundle.origin!r}, its checkpoint {cp.origin!r}")
    rows = decode_entries(bundle.entries, cp.size)
    if bundle.complete:
        _check_complete(bundle, cp)
    else:
        for e, row in zip(bundle.entries, rows, strict=True):
            check_inclusion(e, row, cp)
        _check_streams(rows)
    return VerifiedTrail(cp, cosigners, rows, bundle.complete)


def decode_entries(entries: list[Entry], size: int) -> list[LeafRow]:
    """Each entry's row, checking leaf indices and positions strictly increase under ``size``."""
    rows: list[LeafRow] = []
    last_index = last_position = -1
    for n, e in enumerate(entries):
        if e.index <= last_index:
            raise NotVerified(
                f"entry {n}: leaf {e.index} comes after leaf {last_index} (entries must be in "
                "strictly increasing leaf order, without duplicates)"
            )
        if e.index >= size:
            raise NotVerified(f"entry {n}: leaf {e.index} is not in the checkpoint's {size} leaves")
        try:
            row = decode_leaf(e.leaf_data)
        except LeafError as exc:
            raise NotVerified(f"leaf {e.index}: {exc}") from None
        if row.position <= last_position:
            raise NotVerified(
                f"leaf {e.index}: position {row.position} comes after position {last_position} "
                "(the log's leaves are in position order)"
            )
        rows.append(row)
        last_index, last_position = e.index, row.position
    return rows


def _check_complete(bundle: TrailBundle, cp: Checkpoint) -> None:
    n = len(bundle.entries)
    for i, e in enumerate(bundle.entries):
        if e.index != i:
            raise NotVerified(
                f"leaf {i} is missing (the entry after leaf {i - 1} is leaf {e.index}); a "
                "complete export holds every leaf from 0"
            )
    if n == 0:
        if cp.size:
            raise NotVerified(f"the bundle holds no entries of the checkpoint's {cp.size}")
        return
    root = root_of(leaf_hash(e.leaf_data) for e in bundle.entries)
    if n == cp.size:
        if root != cp.root:
            raise NotVerified(
                f"the {n} entries do not hash to the checkpoint's root (an entry was changed, "
                "dropped, added or moved)"
            )
        return
    try:
        verify_consistency(n, cp.size, root, cp.root, bundle.consistency)
    except ProofError as exc:
        raise NotVerified(
            f"the {n} entries are not the first {n} of the checkpoint's {cp.size}: {exc}"
        ) from None


def check_inclusion(e: Entry, row: LeafRow, cp: Checkpoint) -> None:
    """NotVerified unless the entry's proof puts its leaf data at its index under the checkpoint."""
    if e.proof is None:
        raise NotVerified(f"leaf {e.index} (position {row.position}) has no inclusion proof")
    try:
        verify_inclusion(e.index, cp.size, leaf_hash(e.leaf_data), e.proof, cp.root)
    except ProofError as exc:
        raise NotVerified(f"leaf {e.index} (position {row.position}): {exc}") from None


def _check_streams(rows: list[LeafRow]) -> None:
    # A selection holds whole streams: a gap in a stream's versions is an entry left out.
    last: dict[str, int] = {}
    for r in rows:
        expected = last.get(r.stream_id, 0) + 1
        if r.stream_version != expected:
            raise NotVerified(
                f"stream {r.stream_id}: version {r.stream_version} at position {r.position} "
                f"where version {expected} was due (an event of the stream is missing)"
            )
        last[r.stream_id] = r.stream_version


def recorded(row: LeafRow) -> RecordedEvent:
    """The row as an event; NotVerified when its payload is not one this verifier knows."""
    try:
        return row.recorded()
    except (ValueError, msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise NotVerified(
            f"position {row.position}: {row.event_type} does not decode: {exc}"
        ) from None


def models(rows: list[LeafRow]) -> dict[str, int]:
    """Each model with a stream in the rows, and how many events its stream has there."""
    counts: dict[str, int] = {}
    for r in rows:
        if r.stream_id.startswith(MODEL_STREAM_PREFIX):
            name = r.stream_id[len(MODEL_STREAM_PREFIX) :]
            counts[name] = counts.get(name, 0) + 1
    return counts


class _Job(msgspec.Struct):
    job_id: object = None
    model_name: object = None
    model_version: object = None


_job = msgspec.json.Decoder(_Job)


def _payload(row: LeafRow) -> bytes:
    if schema_version_of(row.event_type) in (None, row.schema_version):
        return row.payload
    return encode_event(recorded(row).event)  # an older schema, shown through the upcasters


def history(rows: list[LeafRow], model: str) -> list[TrailEntry]:
    """The model's trail: its stream's events and every event naming it (gates, jobs)."""
    jobs: dict[str, tuple[str, str]] = {}
    out = []
    for r in rows:
        payload = _payload(r)
        if r.event_type == "BatchJobSubmitted":
            j = _job.decode(payload)
            jobs[str(j.job_id)] = (str(j.model_name), str(j.model_version))
        envelope = (
            r.position,
            r.recorded_at,
            r.actor,
            r.event_type,
            r.stream_id,
            r.correlation_id,
            r.causation_id,
            r.trace_context,
            r.event_id,
            r.schema_version,
        )
        try:
            entry = trail_from_parts(envelope, payload, jobs)
        except msgspec.DecodeError as exc:
            raise NotVerified(f"position {r.position}: its payload is not JSON: {exc}") from None
        if r.stream_id == model_stream_id(model) or entry.model_name == model:
            out.append(entry)
    return out


def prod_at(rows: list[LeafRow], model: str, at: datetime) -> ModelAt:
    """The model's versions and prod at ``at``, folded from its stream's rows."""
    stream = model_stream_id(model)
    return model_at(model, at, [recorded(r) for r in rows if r.stream_id == stream])
