"""Dead letters: what an operator sees of a dead-lettered entry, and retry / drop decisions.

Each dead letter's history (retried, dropped) is its own log stream, so the audit trail says
who replayed or discarded which entry, and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec

from domain import names
from domain.errors import Conflict, InvalidInput
from events.base import Event, RecordedEvent
from events.dead_letters import DeadLetterDropped, DeadLetterRetried

_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_DLQ_STREAM = re.compile(r"^[a-z0-9_.-]{1,100}\.dlq$")


class DeadLetterView(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a ``<stream>.dlq`` stream, as listed."""

    dlq_stream: str
    entry_id: str
    stream: str
    group: str
    original_id: str
    reason: str
    type: str | None = None
    job_id: str | None = None
    shard: int | None = None


@dataclass
class DeadLetterState:
    """A dead letter's history folded from its stream."""

    stream_version: int = 0
    retries: int = 0
    dropped_by: str | None = None


class ReturnDeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """Hand the entry back to its group."""

    letter: DeadLetterView
    reason: str | None = None


class DiscardDeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """Discard the entry."""

    letter: DeadLetterView
    reason: str | None = None


def parse_id(raw: str) -> tuple[str | None, str]:
    """``[DLQ_STREAM/]ENTRY_ID`` -> (the DLQ stream or None, the entry id), or InvalidInput."""
    stream, _, entry_id = raw.rpartition("/") if isinstance(raw, str) else ("", "", "")
    if not _ENTRY_ID.fullmatch(entry_id) or (stream and not _DLQ_STREAM.fullmatch(stream)):
        raise InvalidInput(
            f"invalid dead letter id {raw!r}: use ENTRY_ID (e.g. 1718000000000-0) or "
            "DLQ_STREAM/ENTRY_ID (e.g. jobs.shards.dlq/1718000000000-0), as `just dlq` lists them"
        )
    return stream or None, entry_id


def evolve(state: DeadLetterState, recorded: RecordedEvent) -> DeadLetterState:
    """Apply one recorded event (in place)."""
    state.stream_version = recorded.stream_version
    match recorded.event:
        case DeadLetterRetried():
            state.retries += 1
        case DeadLetterDropped():
            state.dropped_by = recorded.metadata.actor
    return state


def fold(history: list[RecordedEvent]) -> DeadLetterState:
    """A dead letter's state from its events."""
    state = DeadLetterState()
    for r in history:
        evolve(state, r)
    return state


def decide(state: DeadLetterState, cmd: ReturnDeadLetter | DiscardDeadLetter) -> list[Event]:
    """The event a retry or a drop records (none when it repeats a drop)."""
    letter, reason = cmd.letter, names.check_reason(cmd.reason)
    fields = {
        "dlq_stream": letter.dlq_stream,
        "entry_id": letter.entry_id,
        "group": letter.group,
        "stream": letter.stream,
        "original_id": letter.original_id,
        "reason": reason,
    }
    if isinstance(cmd, DiscardDeadLetter):
        return [] if state.dropped_by else [DeadLetterDropped(**fields)]
    if state.dropped_by:
        raise Conflict(f"dead letter {letter.entry_id} was dropped by {state.dropped_by}")
    if not letter.group:
        raise Conflict(f"dead letter {letter.entry_id} names no consumer group to retry it")
    return [DeadLetterRetried(**fields)]
