"""Reading a stream's entries as (position, entry id, digest), a batch at a time, for the audit.

Without hiredis, parsing 3 million fields in Python would dominate, so Redis hashes the entries
itself (a Lua script over XRANGE); with hiredis the entries are fetched and hashed here.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from redis.utils import HIREDIS_AVAILABLE

_NAMES: dict[str, bytes] = {}


def entry_digest(fields: dict[str, str | bytes]) -> str:
    """The digest the Lua script computes for an entry with these fields, in this order."""
    parts = []
    for name, value in fields.items():
        parts.append(_NAMES.get(name) or _NAMES.setdefault(name, name.encode()))
        parts.append(value if value.__class__ is bytes else value.encode())  # type: ignore[union-attr]
    return hashlib.sha1(b"\0".join(parts), usedforsecurity=False).hexdigest()


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


async def digests(
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


class Cursor:
    """A look-ahead cursor over one stream's digests, a batch at a time."""

    def __init__(self, batches: AsyncIterator[list[tuple[int, str, str]]]) -> None:
        self.batches, self.buf, self.i, self.done = batches, [], 0, False
        self.fetched = 0  # batches read so far

    async def peek(self) -> tuple[int, str, str] | None:
        """The next entry, without taking it (None at the end of the stream)."""
        while self.i >= len(self.buf):
            if self.done:
                return None
            try:
                self.buf, self.i = await anext(self.batches), 0
                self.fetched += 1
            except StopAsyncIteration:
                self.done = True
        return self.buf[self.i]

    def take(self) -> None:
        """Move past the entry peek returned."""
        self.i += 1
