"""Dead-letter use cases: list them, hand one back to its group, or drop one.

A retry is recorded as ``DeadLetterRetried``; the relay publishes it to ``dlq.events`` and the
named group's runner handles the entry again (and removes it once handled). A drop is recorded
as ``DeadLetterDropped`` and then removes the entry; repeating a drop only removes it again.
"""

from __future__ import annotations

from domain.dead_letters.aggregate import (
    DeadLetterView,
    DiscardDeadLetter,
    ReturnDeadLetter,
    decide,
    parse_id,
)
from domain.dead_letters.commands import DropDeadLetter, ListDeadLetters, RetryDeadLetter
from domain.dead_letters.ports import DeadLetterPorts, DeadLetterQueue
from domain.errors import Conflict, InvalidInput, NotFound
from events.base import EventMetadata, RecordedEvent

MAX_LIST = 10_000


async def list_dead_letters(query: ListDeadLetters, ports: DeadLetterPorts) -> list[DeadLetterView]:
    """Dead letters of one stream or of all, oldest first, with their reasons."""
    limit = query.limit
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIST}")
    return await ports.queue.list(query.stream, limit)


async def _letter(queue: DeadLetterQueue, raw_id: str) -> DeadLetterView:
    dlq_stream, entry_id = parse_id(raw_id)
    found = await queue.find(dlq_stream, entry_id)
    if not found:
        raise NotFound(f"no dead letter {raw_id!r}; `just dlq` lists them")
    if len(found) > 1:
        where = ", ".join(f"{f.dlq_stream}/{f.entry_id}" for f in found)
        raise Conflict(f"dead letter id {entry_id} is in several streams; name one: {where}")
    return found[0]


async def _record(
    ports: DeadLetterPorts,
    letter: DeadLetterView,
    decision: ReturnDeadLetter | DiscardDeadLetter,
    metadata: EventMetadata,
) -> list[RecordedEvent]:
    """Load the dead letter's stream, decide, save what it decided."""
    state = await ports.log.load(letter.dlq_stream, letter.entry_id)
    events = decide(state, decision)
    return await ports.log.save(letter.dlq_stream, letter.entry_id, state, events, metadata)


async def retry_dead_letter(
    cmd: RetryDeadLetter, ports: DeadLetterPorts
) -> tuple[DeadLetterView, list[RecordedEvent]]:
    """Record that the entry goes back to its group (which then handles it again)."""
    letter = await _letter(ports.queue, cmd.dead_letter_id)
    decision = ReturnDeadLetter(letter=letter, reason=cmd.reason)
    return letter, await _record(ports, letter, decision, cmd.metadata)


async def drop_dead_letter(
    cmd: DropDeadLetter, ports: DeadLetterPorts
) -> tuple[DeadLetterView, list[RecordedEvent]]:
    """Record that the entry is discarded, then remove it from its DLQ stream."""
    letter = await _letter(ports.queue, cmd.dead_letter_id)
    decision = DiscardDeadLetter(letter=letter, reason=cmd.reason)
    recorded = await _record(ports, letter, decision, cmd.metadata)
    await ports.queue.remove(letter.dlq_stream, letter.entry_id)
    return letter, recorded


HANDLERS = {
    RetryDeadLetter: retry_dead_letter,
    DropDeadLetter: drop_dead_letter,
    ListDeadLetters: list_dead_letters,
}
"""Which handler answers each dead-letter command (the message bus routes by command type)."""
