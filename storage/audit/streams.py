"""Stream audit: every area stream holds the log's events from its trim point, unchanged.

Each entry is reduced to a SHA-1 of its names and values and compared with the digest of
what the relay would have written for the log's row. Without hiredis, parsing 3 million
fields in Python would dominate, so Redis hashes the entries itself (a Lua script over
XRANGE); with hiredis the entries are fetched and hashed here. An entry whose digest differs
is fetched whole and compared field by field.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.utils import HIREDIS_AVAILABLE
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.audit.reports import Finding
from events.codec import area_of, event_types
from events.streams import area_stream
from storage.audit.reader import chunks
from storage.projections import get_checkpoint
from storage.streams.relay import LATER_FIELDS, RELAY_CHECKPOINT, entry_fields

# One string per call ("<id> <sha1>\n" per entry): parsing 2 strings per entry in Python
# costs more than the check itself. Values never hold a NUL (PostgreSQL text cannot, JSON
# escapes it), so NUL-joined names and values are unambiguous.
_DIGESTS = """
local rows = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
local out = {}
for _, e in ipairs(rows) do
  out[#out + 1] = e[1] .. ' ' .. redis.sha1hex(table.concat(e[2], '\\0'))
end
return table.concat(out, '\\n')
"""
CHECK = "streams"
_NAMES: dict[str, bytes] = {}


def entry_digest(fields: dict[str, str | bytes]) -> str:
    """The digest the Lua script computes for an entry with these fields, in this order."""
    parts = []
    for name, value in fields.items():
        parts.append(_NAMES.get(name) or _NAMES.setdefault(name, name.encode()))
        parts.append(value if value.__class__ is bytes else value.encode())  # type: ignore[union-attr]
    return hashlib.sha1(b"\0".join(parts), usedforsecurity=False).hexdigest()


def event_streams() -> list[str]:
    """The Redis stream of every area that has events."""
    return sorted({area_stream(t.area) for t in event_types().values()})


async def _lua_batch(redis: aioredis.Redis, stream: str, start: str, batch: int) -> list:
    """(entry id, digest) pairs hashed by Redis: cheap to parse without hiredis."""
    out = await redis.register_script(_DIGESTS)(keys=[stream], args=[start, batch])
    return [tuple(line.split(b" ", 1)) for line in out.split(b"\n")] if out else []


async def _plain_batch(redis: aioredis.Redis, stream: str, start: str, batch: int) -> list:
    """(entry id, digest) pairs hashed here: with hiredis, parsing whole entries is cheap and
    Redis does less work than in the script."""
    rows = await redis.xrange(stream, start, "+", count=batch)
    return [
        (entry_id, entry_digest({k.decode(): v for k, v in fields.items()}).encode())
        for entry_id, fields in rows
    ]


async def _digests(
    redis: aioredis.Redis, stream: str, batch: int
) -> AsyncIterator[list[tuple[int, str, str]]]:
    """Batches of (position, entry id, digest) of every entry of a stream, oldest first.

    The next batch is asked for while this one is compared, so Redis works meanwhile.
    """
    fetch = _plain_batch if HIREDIS_AVAILABLE else _lua_batch
    pending: asyncio.Future | None = asyncio.ensure_future(fetch(redis, stream, "-", batch))
    try:
        while pending is not None:
            pairs = await pending
            pending = None
            if len(pairs) == batch:
                ms, _, seq = pairs[-1][0].decode().partition("-")
                after = f"{ms}-{int(seq) + 1}"
                pending = asyncio.ensure_future(fetch(redis, stream, after, batch))
            yield [(int(i.split(b"-")[0]), i.decode(), d.decode()) for i, d in pairs]
    finally:
        if pending is not None:
            await asyncio.gather(pending, return_exceptions=True)


class _Cursor:
    """A look-ahead cursor over one stream's digests, a batch at a time."""

    def __init__(self, batches: AsyncIterator[list[tuple[int, str, str]]]) -> None:
        self.batches, self.buf, self.i, self.done = batches, [], 0, False

    async def peek(self) -> tuple[int, str, str] | None:
        """The next entry, without taking it (None at the end of the stream)."""
        while self.i >= len(self.buf):
            if self.done:
                return None
            try:
                self.buf, self.i = await anext(self.batches), 0
            except StopAsyncIteration:
                self.done = True
        return self.buf[self.i]

    def take(self) -> None:
        """Move past the entry peek returned."""
        self.i += 1


async def _compare(redis: aioredis.Redis, stream: str, row: Any) -> str | None:
    """Which fields of the entry at ``row``'s position differ from the log, or None."""
    found = await redis.xrange(stream, f"{row['position']}-0", f"{row['position']}-0")
    got = {k.decode(): v for k, v in found[0][1].items()} if found else {}
    bad = []
    for name, value in entry_fields(row).items():
        want = value if isinstance(value, bytes) else value.encode()
        if name not in got and name in LATER_FIELDS:
            continue  # published before the field existed
        if got.get(name) != want:
            bad.append(name)
    extra = sorted(set(got) - set(entry_fields(row)))
    if not bad and not extra:
        return None
    return "differs from the log in " + ", ".join(bad + [f"extra field {e}" for e in extra])


class StreamCheck:
    """Fed the log in position order, it walks every area stream beside it and compares."""

    def __init__(self, redis: aioredis.Redis, published: int, batch: int = 2000) -> None:
        self.redis, self.published, self.batch = redis, published, batch
        self.streams = event_streams()
        self.findings: list[Finding] = []
        self.checked = dict.fromkeys(self.streams, 0)
        self.compared_whole = (
            0  # entries whose digest differed, fetched and compared field by field
        )
        self._areas: dict[str, str] = {}
        self._missing: set[str] = set()
        self._firsts: dict[str, int | None] = {}
        self._cursors: dict[str, _Cursor] = {}

    async def start(self) -> None:
        """Find each stream's trim point (its first entry)."""
        for s in self.streams:
            first = await self.redis.xrange(s, "-", "+", count=1)
            self._firsts[s] = int(first[0][0].split(b"-")[0]) if first else None
            self._cursors[s] = _Cursor(_digests(self.redis, s, self.batch))
            await self._cursors[s].peek()  # every stream's first batch is then on its way

    async def _extras_before(self, stream: str, position: int) -> None:
        cursor = self._cursors[stream]
        while (head := await cursor.peek()) is not None and head[0] < position:
            self.findings.append(
                Finding(CHECK, head[0], f"{stream} holds entry {head[1]} the log does not have")
            )
            cursor.take()

    async def feed(self, rows: list[Any]) -> None:
        """Compare the next rows (those the relay has published) with their entries."""
        for row in rows:
            position, type_name = row["position"], row["event_type"]
            if position > self.published:
                return
            stream = self._areas.get(type_name)
            if stream is None:
                stream = self._areas[type_name] = area_stream(area_of(type_name))
            first = self._firsts.get(stream)
            if first is None:
                if stream not in self._missing:
                    self._missing.add(stream)
                    problem = f"{stream} is missing or empty (Redis lost it?)"
                    self.findings.append(Finding(CHECK, position, problem))
                continue
            if position < first:
                continue  # trimmed: every group had processed it
            await self._extras_before(stream, position)
            head = await self._cursors[stream].peek()
            if head is None or head[1] != f"{position}-0":
                self.findings.append(Finding(CHECK, position, f"{stream} lacks entry {position}-0"))
                continue
            self._cursors[stream].take()
            self.checked[stream] += 1
            if head[2] != entry_digest(entry_fields(row)):
                self.compared_whole += 1
                problem = await _compare(self.redis, stream, row)
                if problem:
                    self.findings.append(
                        Finding(CHECK, position, f"{stream} {position}-0 {problem}")
                    )

    async def finish(self) -> tuple[list[Finding], dict[str, int]]:
        """Entries left over (up to what was published) are ones the log does not have."""
        for stream in self.streams:
            await self._extras_before(stream, self.published + 1)
        return self.findings, self.checked


async def check_streams(
    conn: AsyncConnection, redis: aioredis.Redis, *, batch: int = 2000
) -> tuple[list[Finding], dict[str, int]]:
    """Compare every stream with the log up to the relay's checkpoint (later rows may be unsent)."""
    check = StreamCheck(redis, await get_checkpoint(conn, RELAY_CHECKPOINT), batch)
    await check.start()
    async for rows in chunks(conn, until=check.published):
        await check.feed(rows)
    return await check.finish()
