"""Signed checkpoints of the log's tree and the witnesses' cosignatures, in PostgreSQL.

A checkpoint is made when the tree grew by ``every`` entries, or ``interval_s`` passed and it
grew at all, or on demand; the log's key signs it (C2SP signed note). Witnesses post
cosignatures, which are kept only when they verify under a key of WITNESS_KEYS.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import structlog
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.audit import note
from domain.audit.ports import SignedCheckpoint
from domain.errors import Conflict, InvalidInput, NotFound
from events.streams import CHECKPOINTS_STREAM
from storage.audit import tree
from storage.tables import log_checkpoints, log_cosignatures

log = structlog.get_logger("checkpoints")
STREAM = CHECKPOINTS_STREAM


def load_signer(path: Path, name: str) -> note.Signer:
    """The log's signing key from ``path``, made there (mode 600) on first use."""
    try:
        return note.Signer.parse(path.read_text())
    except FileNotFoundError:
        pass
    signer = note.Signer.generate(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return note.Signer.parse(path.read_text())
    with os.fdopen(fd, "w") as f:
        f.write(signer.skey() + "\n")
    log.info("audit_signing_key_created", path=str(path), public_key=signer.verifier().vkey())
    return signer


def witness_verifiers(lines: tuple[str, ...]) -> list[note.Verifier]:
    """WITNESS_KEYS as verifiers; a malformed line is a NoteError naming it."""
    keys = [note.Verifier.parse(line) for line in lines]
    for k in keys:
        if k.alg != note.COSIGNATURE_V1:
            raise note.NoteError(f"witness key {k.name!r} is not a cosignature/v1 key")
    return keys


async def _cosignatures(conn: AsyncConnection, size: int) -> list[tuple[str, str]]:
    rows = await conn.execute(
        select(log_cosignatures.c.witness, log_cosignatures.c.line)
        .where(log_cosignatures.c.size == size)
        .order_by(log_cosignatures.c.signed_at, log_cosignatures.c.witness)
    )
    return [(r.witness, r.line) for r in rows]


async def _complete(conn: AsyncConnection, row) -> SignedCheckpoint:
    cosigs = await _cosignatures(conn, row.size)
    full = row.note + "".join(line for _, line in cosigs)
    return SignedCheckpoint(
        row.size, bytes(row.root), full, row.created_at, tuple(w for w, _ in cosigs)
    )


async def latest(conn: AsyncConnection) -> SignedCheckpoint | None:
    """The newest checkpoint, with its cosignatures."""
    row = (
        await conn.execute(select(log_checkpoints).order_by(log_checkpoints.c.size.desc()).limit(1))
    ).first()
    return await _complete(conn, row) if row else None


async def at_size(conn: AsyncConnection, size: int) -> SignedCheckpoint | None:
    """The checkpoint of exactly ``size``, with its cosignatures."""
    row = (
        await conn.execute(select(log_checkpoints).where(log_checkpoints.c.size == size))
    ).first()
    return await _complete(conn, row) if row else None


async def covering(conn: AsyncConnection, size: int) -> SignedCheckpoint | None:
    """The oldest checkpoint of at least ``size`` entries."""
    row = (
        await conn.execute(
            select(log_checkpoints)
            .where(log_checkpoints.c.size >= size)
            .order_by(log_checkpoints.c.size)
            .limit(1)
        )
    ).first()
    return await _complete(conn, row) if row else None


async def make_checkpoint(
    conn: AsyncConnection,
    signer: note.Signer,
    origin: str,
    *,
    every: int = 100,
    interval_s: float = 60.0,
    force: bool = False,
) -> SignedCheckpoint | None:
    """Extend the tree and sign a checkpoint when one is due (``force``: whenever it grew)."""
    size = await tree.extend_tree(conn, wait=force)
    if not force and not await conn.scalar(
        text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": tree.TREE_LOCK}
    ):
        return None  # another process holds the tree: it checkpoints too
    last = (
        await conn.execute(select(log_checkpoints).order_by(log_checkpoints.c.size.desc()).limit(1))
    ).first()
    now = datetime.now(UTC)
    if size == 0 or (last is not None and last.size >= size):
        return None
    if not force and last is not None:
        grew = size - last.size
        if grew < every and (now - last.created_at).total_seconds() < interval_s:
            return None
    root = await tree.tree_root(conn, size)
    body = note.Checkpoint(origin, size, root).body()
    signed = note.note_text(body, [note.sign_body(body, signer)])
    await conn.execute(
        log_checkpoints.insert().values(size=size, root=root, note=signed, created_at=now)
    )
    return SignedCheckpoint(size, root, signed, now, ())


async def add_cosignature(
    conn: AsyncConnection, size: int, line: str, witnesses: list[note.Verifier]
) -> str:
    """Keep a witness's cosignature of the checkpoint of ``size``; returns the witness's name.

    NotFound: no such checkpoint; InvalidInput: malformed, unknown key, or not verifying;
    Conflict: the witness cosigned that size with another line already.
    """
    row = (
        await conn.execute(select(log_checkpoints).where(log_checkpoints.c.size == size))
    ).first()
    if row is None:
        raise NotFound(f"no checkpoint of size {size}")
    body, _ = note.split_note(row.note)
    line = line if line.endswith("\n") else line + "\n"
    try:
        _, parsed = note.split_note(body + "\n" + line)
    except note.NoteError as exc:
        raise InvalidInput(f"cosignature: {exc}") from None
    if len(parsed) != 1:
        raise InvalidInput("send one cosignature line")
    sig = parsed[0]
    key = next((w for w in witnesses if w.name == sig.name and w.key_hash == sig.key_hash), None)
    if key is None:
        listed = ", ".join(w.name for w in witnesses) or "none"
        raise InvalidInput(f"witness {sig.name!r} is not listed in WITNESS_KEYS (listed: {listed})")
    if not note.line_signs(sig, body, key):
        raise InvalidInput(f"the cosignature of {sig.name!r} does not verify for size {size}")
    for witness, kept in await _cosignatures(conn, size):
        if witness == key.name:
            if kept != line:
                raise Conflict(f"witness {key.name!r} already cosigned size {size}")
            return key.name
    await conn.execute(
        log_cosignatures.insert().values(
            size=size, witness=key.name, line=line, signed_at=datetime.now(UTC)
        )
    )
    return key.name
