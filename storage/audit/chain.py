"""Hash-chain verification, end to end and against an anchor kept outside PostgreSQL."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.audit.integrity import GENESIS, SCHEME_HMAC, SCHEME_LEGACY, SCHEMES, chain_hash
from domain.audit.reports import Anchor, Finding
from storage.audit.reader import chunks

ADOPTED = "AuditKeyAdopted"

MAX_BREAKS = 100  # a rewritten log breaks everywhere; the first ones are what matters


class ChainBreak(msgspec.Struct, frozen=True):
    """Where and how the hash chain fails to verify."""

    position: int
    stream_id: str
    problem: str


class IntegrityReport(msgspec.Struct, frozen=True):
    """The outcome of a full chain verification."""

    ok: bool
    checked: int
    last_position: int
    breaks: list[ChainBreak]


def _problem(row: Any, top_scheme: int, key: bytes | None, message: bytes | None) -> str | None:
    """What is wrong with one row's own hash, or None."""
    scheme = row["hash_scheme"]
    if scheme not in SCHEMES:
        return f"unknown hash scheme {scheme}"
    if scheme < top_scheme:
        return (
            f"hash scheme {scheme} after scheme {top_scheme}: written by a process without "
            "AUDIT_HMAC_KEY, or rewritten without the key"
        )
    if scheme == SCHEME_LEGACY and row["trace_context"] is not None:
        return "a legacy (scheme 1) row carries a trace context its hash does not cover"
    if scheme == SCHEME_HMAC and not key:
        return "an HMAC row; set AUDIT_HMAC_KEY to check it"
    if chain_hash(row["prev_hash"], row, key, message) != row["hash"]:
        return "content does not match its hash (edited)"
    return None


class ChainCheck:
    """Fed the log in position order, it recomputes every hash and notes each break."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key
        self.prev, self.top, self.checked, self.last = GENESIS, 0, 0, 0
        self.breaks: list[ChainBreak] = []
        self.marker: dict[str, Any] | None = None  # the first AuditKeyAdopted row
        self.first_hmac: int | None = None  # the first HMAC row's position

    def feed(self, rows: list[Any], messages: list[bytes] | None = None) -> None:
        """Check the next rows (``messages``: their ``row_message``, when already made)."""
        for i, row in enumerate(rows):
            self.checked += 1
            if self.first_hmac is None and row["hash_scheme"] == SCHEME_HMAC:
                self.first_hmac = row["position"]
            if self.marker is None and row["event_type"] == ADOPTED:
                self.marker = dict(row)
            if row["prev_hash"] != self.prev:
                self._break(row, "prev_hash does not match the row before (a row was removed)")
            problem = _problem(row, self.top, self.key, messages[i] if messages else None)
            if problem:
                self._break(row, problem)
            elif row["hash_scheme"] > self.top:
                self.top = row["hash_scheme"]
            self.prev, self.last = row["hash"], row["position"]

    def _break(self, row: Any, problem: str) -> None:
        if len(self.breaks) < MAX_BREAKS:
            self.breaks.append(ChainBreak(row["position"], row["stream_id"], problem))

    def report(self) -> IntegrityReport:
        """The outcome so far."""
        return IntegrityReport(
            ok=not self.breaks, checked=self.checked, last_position=self.last, breaks=self.breaks
        )


async def check_chain(
    conn: AsyncConnection, *, batch: int = 5000, key: bytes | None = None
) -> IntegrityReport:
    """Recompute every row's hash in position order and report where the chain breaks."""
    check = ChainCheck(key)
    async for rows in chunks(conn, batch=batch):
        check.feed(rows)
    return check.report()


async def check_anchor(conn: AsyncConnection, anchor: Anchor) -> list[Finding]:
    """Does the log still hold the anchored head, with the same hash? (The chain covers the rest.)"""
    from sqlalchemy import func, select

    from storage.tables import event_log

    row = (
        await conn.execute(
            select(event_log.c.hash, event_log.c.recorded_at).where(
                event_log.c.position == anchor.position
            )
        )
    ).first()
    if row is None:
        last = await conn.scalar(select(func.coalesce(func.max(event_log.c.position), 0)))
        where = "deleted tail" if last < anchor.position else "deleted row"
        return [
            Finding(
                "anchor",
                anchor.position,
                f"the anchored head at position {anchor.position} is missing from the log "
                f"({where}; the log now ends at position {last})",
            )
        ]
    if bytes(row.hash).hex() != anchor.hash:
        return [
            Finding(
                "anchor",
                anchor.position,
                f"position {anchor.position} has hash {bytes(row.hash).hex()[:16]}…, "
                f"the anchor says {anchor.hash[:16]}… (the chain was rewritten)",
            )
        ]
    return []


def chain_findings(report: IntegrityReport) -> list[Finding]:
    """The chain's breaks as audit findings."""
    return [Finding("chain", b.position, f"{b.stream_id}: {b.problem}") for b in report.breaks]
