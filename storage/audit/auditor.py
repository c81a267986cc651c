"""`just audit`: the whole system checked against its own log, in one database snapshot."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.audit.integrity import row_message
from domain.audit.note import Verifier
from domain.audit.reports import Anchor, AuditReport, Finding
from domain.errors import InvalidInput
from storage import event_store
from storage.audit.chain import ChainCheck, chain_findings, check_anchor
from storage.audit.pin import hmac_from, key_findings, pin_findings
from storage.audit.projections import ProjectionRebuild
from storage.audit.reader import chunks
from storage.audit.streams import LiveHashes, StreamCheck
from storage.audit.tree_check import CheckpointCheck
from storage.projections import get_checkpoint
from storage.streams import refusals
from storage.streams.relay import ANCHOR_KEY, RELAY_CHECKPOINT
from storage.tables import event_log

LogKeys = tuple[Verifier | None, list[Verifier]]  # the log's public key (if known), witnesses


class Auditor:
    """Runs the audit checks over one PostgreSQL snapshot and the Redis streams."""

    def __init__(
        self,
        engine: AsyncEngine,
        redis: aioredis.Redis,
        log_keys: Callable[[], LogKeys] | None = None,
    ) -> None:
        self.engine = engine
        self.redis = redis
        self.log_keys = log_keys or (lambda: (None, []))

    async def head(self) -> Anchor | None:
        """The current head of the log as an anchor (None when the log is empty)."""
        async with self.engine.connect() as conn:
            row = await event_store.head(conn)
            pin = await hmac_from(conn) if row else None
        return Anchor(row.position, bytes(row.hash).hex(), row.recorded_at, pin) if row else None

    async def run(
        self,
        *,
        anchor: Anchor | None = None,
        key: bytes | None = None,
        projections: bool = True,
        streams: bool = True,
    ) -> AuditReport:
        """Every check; one REPEATABLE READ transaction, rolled back (scratch tables go with it)."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin() as tx:
                try:
                    return await audit(
                        conn,
                        self.redis,
                        anchor=anchor,
                        key=key,
                        projections=projections,
                        streams=streams,
                        live=self.live_hashes,
                        log_keys=self.log_keys(),
                    )
                finally:
                    await tx.rollback()

    async def live_hashes(self, positions: list[int]) -> tuple[int, dict[int, str]]:
        """The log's head now and the hashes at ``positions``, outside the audit's snapshot."""
        async with self.engine.connect() as conn:
            head = await conn.scalar(select(func.coalesce(func.max(event_log.c.position), 0)))
            rows = await conn.execute(
                select(event_log.c.position, event_log.c.hash).where(
                    event_log.c.position.in_(positions)
                )
            )
        return int(head), {p: bytes(h).hex() for p, h in rows}


async def audit(
    conn: AsyncConnection,
    redis: aioredis.Redis,
    *,
    anchor: Anchor | None = None,
    key: bytes | None = None,
    projections: bool = True,
    streams: bool = True,
    live: LiveHashes | None = None,
    log_keys: LogKeys | None = None,
) -> AuditReport:
    """Chain (and anchor), projections rebuilt and compared, streams compared, on ``conn``.

    One chunked pass over the log feeds all three checks.
    """
    started = time.perf_counter()
    key = key if key is not None else event_store.hmac_key()
    report = AuditReport()
    chain = ChainCheck(key)
    rebuild = ProjectionRebuild() if projections else None
    stream_check = None
    if streams:
        stream_check = StreamCheck(redis, await get_checkpoint(conn, RELAY_CHECKPOINT), live=live)
        await stream_check.start()
    tree_check = CheckpointCheck(*(log_keys or (None, [])))
    await tree_check.start(conn)
    async for rows in chunks(conn, prefetch=True):
        messages = [row_message(r) for r in rows]  # hashed by the chain and by the tree
        chain.feed(rows, messages)
        tree_check.feed(rows, messages)
        if rebuild is not None:
            rebuild.feed(rows)
        if stream_check is not None:
            await stream_check.feed(rows)
    result = chain.report()
    report.events, report.last_position = result.checked, result.last_position
    report.findings += chain_findings(result)
    report.checks["chain"] = f"{result.checked} events, {len(result.breaks)} breaks"
    found, report.checks["hmac"] = key_findings(chain, key)
    report.findings += found
    if anchor is not None:
        found = await check_anchor(conn, anchor) + pin_findings(chain, anchor.hmac_from, "anchor")
        report.findings += found
        report.checks["anchor"] = f"position {anchor.position} " + ("NOT held" if found else "held")
    report.findings += await relay_anchor_findings(conn, redis, report.checks, chain)
    found, report.checks["checkpoints"] = await tree_check.finish(conn)
    report.findings += found
    if rebuild is not None:
        found, counts = await rebuild.compare(conn)
        report.findings += found
        rows_made = ", ".join(f"{t} {n}" for t, n in counts.items())
        report.checks["projections"] = f"rebuilt {rows_made}; {len(found)} differences"
    if stream_check is not None:
        found, checked = await stream_check.finish()
        report.findings += found
        entries = ", ".join(f"{s} {n}" for s, n in checked.items())
        report.checks["streams"] = (
            f"compared {entries}; {stream_check.compared_whole} fetched whole; "
            f"{len(found)} differences"
        )
    try:
        report.checks["relay"] = refusals.summary(await refusals.load(redis))
    except RedisError as exc:
        report.checks["relay"] = f"unreadable ({exc})"
    report.findings.sort(key=lambda f: (f.position is None, f.position or 0))
    report.seconds = round(time.perf_counter() - started, 3)
    return report


async def relay_anchor_findings(
    conn: AsyncConnection,
    redis: aioredis.Redis,
    checks: dict[str, str],
    chain: ChainCheck | None = None,
) -> list[Finding]:
    """The head the relay last published (kept in Redis) must still be in the log, unchanged."""
    try:
        raw = await redis.get(ANCHOR_KEY)
    except RedisError as exc:
        checks["relay anchor"] = f"unreadable ({exc})"
        return [Finding("relay anchor", None, f"cannot read the relay's anchor from Redis: {exc}")]
    if raw is None:
        checks["relay anchor"] = "none yet (nothing published)"
        return []
    try:
        relay_anchor = Anchor.parse(raw.decode())
    except InvalidInput as exc:
        return [Finding("relay anchor", None, f"{ANCHOR_KEY} in Redis is not an anchor: {exc}")]
    found = [
        Finding("relay anchor", f.position, f.problem.replace("anchored head", "relay's last head"))
        for f in await check_anchor(conn, relay_anchor)
    ]
    if chain is not None:
        found += pin_findings(chain, relay_anchor.hmac_from, "the relay's anchor")
    checks["relay anchor"] = f"position {relay_anchor.position} " + (
        "held" if not found else "NOT held"
    )
    return found
