"""Dead-letter decisions and ids (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from domain.dead_letters.aggregate import (
    DeadLetterView,
    DiscardDeadLetter,
    ReturnDeadLetter,
    decide,
    fold,
    parse_id,
)
from domain.errors import Conflict, InvalidInput
from events.base import EventMetadata, RecordedEvent
from events.dead_letters import DeadLetterDropped, DeadLetterRetried

LETTER = DeadLetterView(
    dlq_stream="jobs.shards.dlq",
    entry_id="5-0",
    stream="jobs.shards",
    group="batch-inference",
    original_id="3-0",
    reason="ValueError: boom (failed 3 deliveries)",
    job_id="j",
    shard=1,
)


def _recorded(events, actor: str = "alice") -> list[RecordedEvent]:
    return [
        RecordedEvent(
            position=i + 1,
            stream_id="dead-letter-jobs.shards.dlq/5-0",
            stream_version=i + 1,
            event_id=uuid.uuid4(),
            recorded_at=datetime.now(UTC),
            metadata=EventMetadata(actor=actor),
            event=e,
        )
        for i, e in enumerate(events)
    ]


def test_ids_name_an_entry_and_optionally_its_dlq_stream() -> None:
    assert parse_id("1718000000000-0") == (None, "1718000000000-0")
    assert parse_id("jobs.shards.dlq/5-0") == ("jobs.shards.dlq", "5-0")
    for bad in ("", "5", "5-x", "jobs.shards/5-0", "../x.dlq/5-0", "a.dlq/5-0/1"):
        with pytest.raises(InvalidInput, match="invalid dead letter id"):
            parse_id(bad)


def test_retry_records_the_group_and_may_repeat_until_dropped() -> None:
    [retried] = decide(fold([]), ReturnDeadLetter(letter=LETTER, reason="fixed"))
    assert isinstance(retried, DeadLetterRetried)
    assert (retried.group, retried.stream, retried.original_id) == (
        "batch-inference",
        "jobs.shards",
        "3-0",
    )
    state = fold(_recorded([retried]))
    assert state.retries == 1 and decide(state, ReturnDeadLetter(letter=LETTER))
    [dropped] = decide(state, DiscardDeadLetter(letter=LETTER))
    assert isinstance(dropped, DeadLetterDropped)
    gone = fold(_recorded([retried, dropped], actor="bob"))
    assert decide(gone, DiscardDeadLetter(letter=LETTER)) == []  # a repeated drop records nothing
    with pytest.raises(Conflict, match="dropped by bob"):
        decide(gone, ReturnDeadLetter(letter=LETTER))


def test_a_dead_letter_without_a_group_cannot_be_retried() -> None:
    orphan = DeadLetterView(
        dlq_stream="jobs.shards.dlq",
        entry_id="6-0",
        stream="jobs.shards",
        group="",
        original_id="",
        reason="",
    )
    with pytest.raises(Conflict, match="no consumer group"):
        decide(fold([]), ReturnDeadLetter(letter=orphan))
    with pytest.raises(InvalidInput, match="reason"):
        decide(fold([]), DiscardDeadLetter(letter=LETTER, reason="x" * 100_000))
