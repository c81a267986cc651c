"""Stream audit: every area stream holds the log's events from its trim point, unchanged.

Each entry is reduced to a SHA-1 of its names and values (storage.audit.stream_digests) and
compared with the digest of what the relay would have written for the log's row. An entry whose
digest differs is fetched whole and compared field by field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.audit.reports import Finding
from events.codec import area_of, event_types
from events.streams import area_stream
from storage.audit.reader import chunks
from storage.audit.stream_digests import Cursor, digests, entry_digest
from storage.projections import get_checkpoint
from storage.streams.relay import LATER_FIELDS, RELAY_CHECKPOINT, entry_fields

CHECK = "streams"
MAX_BEYOND = 1000  # entries above the snapshot's head rechecked one by one
# The live log's head and the hashes (hex) at some positions, read outside the audit snapshot.
LiveHashes = Callable[[list[int]], Awaitable[tuple[int, dict[int, str]]]]


async def last_generated_id(redis: aioredis.Redis, stream: str) -> str:
    """The highest id ever added to ``stream`` ("0-0" when there is none): Redis refuses any
    XADD at or below it, even once the entry that set it is deleted."""
    try:
        info = await redis.xinfo_stream(stream)
    except ResponseError:  # no such stream
        return "0-0"
    last = info.get("last-generated-id") or b"0-0"
    return last.decode() if isinstance(last, bytes) else str(last)


def blocked_problem(stream: str, last_id: str, head: int) -> str:
    """What a stream whose last id is above the log's head means, and its repair."""
    return (
        f"{stream}'s last id {last_id} is above the log's head {head}: an entry was added "
        "beyond the log (even if deleted since), so Redis refuses every later publish to it; "
        f"repair: just relay --rebuild {stream}"
    )


def event_streams() -> list[str]:
    """The Redis stream of every area that has events."""
    return sorted({area_stream(t.area) for t in event_types().values()})


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

    def __init__(
        self,
        redis: aioredis.Redis,
        published: int,
        batch: int = 2000,
        live: LiveHashes | None = None,
    ) -> None:
        self.redis, self.published, self.batch, self.live = redis, published, batch, live
        self.head = 0  # the last position of the log this check was fed
        self._last_ids: dict[str, str] = {}  # stream -> its last generated id
        self._beyond: list[tuple[str, int, str]] = []  # entries above the head, to recheck
        self.streams = event_streams()
        self.findings: list[Finding] = []
        self.checked = dict.fromkeys(self.streams, 0)
        self.compared_whole = (
            0  # entries whose digest differed, fetched and compared field by field
        )
        self._areas: dict[str, str] = {}
        self._missing: set[str] = set()
        self._firsts: dict[str, int | None] = {}
        self._cursors: dict[str, Cursor] = {}
        self._trim_reads: dict[str, tuple[int, int | None]] = {}  # stream -> (batch, first)

    async def start(self) -> None:
        """Find each stream's trim point: the first entry of its first batch (one read, so a
        trim between two reads cannot make the batch start above the point)."""
        for s in self.streams:
            self._last_ids[s] = await last_generated_id(self.redis, s)
            self._cursors[s] = Cursor(digests(self.redis, s, self.batch))
            head = await self._cursors[s].peek()
            self._firsts[s] = head[0] if head else None

    async def _trimmed_since(self, stream: str, position: int) -> bool:
        """Whether ``position`` is now below ``stream``'s first entry: trimmed while this audit
        ran (the workers trim what every group has processed, every few seconds). A trim never
        empties a stream, so an empty one is not taken for trimmed."""
        # Read once per batch of the cursor: a read made after the batch arrived sees every
        # trim that could have kept an entry out of it (a lost stream costs no read per entry).
        fetched = self._cursors[stream].fetched
        seen = self._trim_reads.get(stream)
        if seen is None or seen[0] != fetched:
            first = await self.redis.xrange(stream, "-", "+", count=1)
            top = int(first[0][0].split(b"-")[0]) if first else None
            seen = self._trim_reads[stream] = (fetched, top)
        now = seen[1]
        if not now or position >= now:
            return False
        self._firsts[stream] = now
        return True

    async def _extras_before(self, stream: str, position: int) -> None:
        cursor = self._cursors[stream]
        while (head := await cursor.peek()) is not None and head[0] < position:
            if head[0] > self.head and self.live is not None:
                self._beyond.append((stream, head[0], head[1]))  # maybe appended since
            else:
                self.findings.append(
                    Finding(CHECK, head[0], f"{stream} holds entry {head[1]} the log does not have")
                )
            cursor.take()

    async def feed(self, rows: list[Any]) -> None:
        """Compare the next rows (those the relay has published) with their entries."""
        for row in rows:
            position, type_name = row["position"], row["event_type"]
            self.head = position
            unsent = position > self.published  # not expected yet, but checked when there
            stream = self._areas.get(type_name)
            if stream is None:
                stream = self._areas[type_name] = area_stream(area_of(type_name))
            first = self._firsts.get(stream)
            if first is None:
                if stream not in self._missing and not unsent:
                    self._missing.add(stream)
                    problem = f"{stream} is missing or empty (Redis lost it?)"
                    self.findings.append(Finding(CHECK, position, problem))
                continue
            if position < first:
                continue  # trimmed: every group had processed it
            await self._extras_before(stream, position)
            head = await self._cursors[stream].peek()
            if head is None or head[1] != f"{position}-0":
                if not unsent and not await self._trimmed_since(stream, position):
                    problem = f"{stream} lacks entry {position}-0"
                    self.findings.append(Finding(CHECK, position, problem))
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
        """Entries left over are ones the log does not have (rechecked against the live log
        above this snapshot's head: the relay may have published rows appended since), and
        a stream whose last id is above the log's head refuses every later publish."""
        for stream in self.streams:
            await self._extras_before(stream, 2**62)
        live = await self._recheck_beyond()
        for stream, last_id in self._last_ids.items():
            top = int(last_id.split("-")[0])
            if top > self.head and top > live.get("head", 0):
                self.findings.append(
                    Finding(CHECK, self.head + 1, blocked_problem(stream, last_id, self.head))
                )
        return self.findings, self.checked

    async def _recheck_beyond(self) -> dict[str, int]:
        """Entries above the snapshot's head that the live log has, with the same hash, are
        fine; every other one is a finding. Returns the live head."""
        if self.live is None:
            return {}
        beyond = self._beyond[:MAX_BEYOND]
        head, hashes = await self.live([p for _, p, _ in beyond])
        for stream, position, entry_id in beyond:
            found = await self.redis.xrange(stream, entry_id, entry_id)
            got = found[0][1].get(b"hash", b"").decode() if found else ""
            if entry_id != f"{position}-0" or hashes.get(position) != got:
                problem = f"{stream} holds entry {entry_id} the log does not have"
                if position > head:
                    problem += f" (above the log's head {head})"
                self.findings.append(Finding(CHECK, position, problem))
        for stream, position, entry_id in self._beyond[MAX_BEYOND:]:
            problem = f"{stream} holds entry {entry_id} above the log's head (not rechecked)"
            self.findings.append(Finding(CHECK, position, problem))
        return {"head": head}


async def check_streams(
    conn: AsyncConnection, redis: aioredis.Redis, *, batch: int = 2000
) -> tuple[list[Finding], dict[str, int]]:
    """Compare every stream with the log (rows after the relay's checkpoint may be unsent)."""
    check = StreamCheck(redis, await get_checkpoint(conn, RELAY_CHECKPOINT), batch)
    await check.start()
    async for rows in chunks(conn):
        await check.feed(rows)
    return await check.finish()
