"""The runner's dead-letter path: an idempotent write to ``<stream>.dlq``, its reason, and the
replay of an entry an operator retried (``DeadLetterRetried`` on ``dlq.events``).

Each step may be repeated after a crash or an outage without duplicating anything: the write
is one Lua script that does nothing when the entry was already dead-lettered, and the
acknowledgement that follows it (``consumers.delivery.acknowledge``) is one transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
import redis.asyncio as aioredis
import structlog

from consumers.delivery import ERRORS_KEY, INDEX_KEY, Fields, entry_key
from events.dead_letters import DLQ_FIELDS, DeadLetterRetried
from events.streams import dead_letter_stream

log = structlog.get_logger("consumer")

# KEYS: the DLQ stream, the index. ARGV: index field, maxlen, then names and values.
# Returns {id, 1} when written now, {id, 0} when an earlier attempt had written it.
_WRITE = """
local done = redis.call('HGET', KEYS[2], ARGV[1])
if done then return {done, 0} end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
redis.call('HSET', KEYS[2], ARGV[1], id)
return {id, 1}
"""


async def write(
    redis: aioredis.Redis,
    group: str,
    stream: str,
    entry_id: str,
    fields: Fields,
    reason: str,
    maxlen: int,
) -> bool:
    """Add the entry to ``<stream>.dlq`` unless it already is there; True if added now."""
    own = {k: v for k, v in fields.items() if k not in DLQ_FIELDS}
    extra = (reason.encode(), group.encode(), entry_id.encode(), stream.encode())
    args: list[bytes | str | int] = [entry_key(group, stream, entry_id), maxlen]
    for name, value in [*own.items(), *zip(DLQ_FIELDS, extra, strict=True)]:
        args += [name, value]
    keys = [dead_letter_stream(stream), INDEX_KEY]
    _, created = await redis.register_script(_WRITE)(keys=keys, args=args)
    return bool(created)


async def reason(
    redis: aioredis.Redis, group: str, stream: str, entry_id: str, failures: int, retries: int
) -> str:
    """Why an entry is dead-lettered: its last error and how often it failed."""
    last_error = await redis.hget(ERRORS_KEY, entry_key(group, stream, entry_id))
    why = last_error.decode(errors="replace") if last_error else "consumer died while handling it"
    unavailable = f", {retries} more while a service was unavailable" if retries else ""
    return f"{why} (failed {failures} deliveries{unavailable})"


async def replay(
    redis: aioredis.Redis,
    group: str,
    fields: Fields,
    handler: Callable[[str, str, Fields], Awaitable[None]],
) -> None:
    """On ``DeadLetterRetried`` for this group: handle the dead letter again, then remove it.

    A failure leaves the ``dlq.events`` entry pending, so the retry itself is retried (and
    dead-lettered to ``dlq.events.dlq`` if it keeps failing).
    """
    if fields.get(b"type") != b"DeadLetterRetried":
        return
    event = msgspec.json.decode(fields[b"payload"], type=DeadLetterRetried)
    if event.group != group:
        return
    found = await redis.xrange(event.dlq_stream, event.entry_id, event.entry_id)
    if not found:
        log.warning("dead_letter_gone", dlq_stream=event.dlq_stream, entry_id=event.entry_id)
        return
    original = {k: v for k, v in found[0][1].items() if k not in DLQ_FIELDS}
    await handler(event.stream, event.original_id, original)
    await redis.xdel(event.dlq_stream, event.entry_id)
    log.info("dead_letter_retried", group=group, stream=event.stream, dlq_entry_id=event.entry_id)
