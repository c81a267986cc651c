"""The Merkle tree kept in PostgreSQL agrees with one recomputed from the log; checkpoints sign it."""

from __future__ import annotations

import os
import stat

import pytest
from sqlalchemy import text

from domain.audit import merkle, note
from domain.audit.integrity import row_message
from domain.errors import Conflict, InvalidInput, NotFound
from storage.audit import tree
from storage.audit.reader import COLUMNS, chunks
from tests.integration.audit.support import lifecycle, register

pytestmark = pytest.mark.anyio


async def _leaves(p) -> list[bytes]:
    out: list[bytes] = []
    async with p.engine.begin() as conn:
        async for rows in chunks(conn, columns=COLUMNS):
            out.extend(merkle.leaf_hash(row_message(r)) for r in rows)
    return out


async def test_the_stored_tree_matches_the_log_at_every_size(private) -> None:
    await lifecycle(private)
    for i in range(7):
        await register(private, f"tree-{i}", "v1", i)
    leaves = await _leaves(private)
    async with private.engine.begin() as conn:
        assert await tree.extend_tree(conn, wait=True) == len(leaves) == 12
    for i in range(3):  # grows again from a non-power-of-two size
        await register(private, f"more-{i}", "v1", 50 + i)
    leaves = await _leaves(private)
    async with private.engine.begin() as conn:
        assert await tree.extend_tree(conn, wait=True) == 15
        for n in range(1, 16):
            root = await tree.tree_root(conn, n)
            assert root == merkle.root_of(leaves[:n])
            for i in range(n):
                proof = await tree.inclusion(conn, i, n)
                merkle.verify_inclusion(i, n, leaves[i], proof, root)
            for m in range(1, n + 1):
                old = merkle.root_of(leaves[:m])
                merkle.verify_consistency(m, n, old, root, await tree.consistency(conn, m, n))
        with pytest.raises(NotFound, match="beyond the tree"):
            await tree.tree_root(conn, 16)
        got = await tree.entries(conn, 3, 6)
    assert [merkle.leaf_hash(data) for _, _, data in got] == leaves[3:6]


async def test_checkpoints_are_signed_stored_and_cosigned(private) -> None:
    t = private.transparency
    await lifecycle(private)
    made = await t.checkpoint_now()
    key_file = t.policy.key_file
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    verifier = note.Verifier.parse(t.public_key())
    checkpoint, _ = note.open_checkpoint(made.note, verifier)
    assert (checkpoint.size, checkpoint.root) == (5, made.root)
    assert checkpoint.root == merkle.root_of(await _leaves(private))
    assert await t.checkpoint() is None  # nothing new: no second checkpoint of size 5
    # A witness listed in WITNESS_KEYS may cosign; anyone else may not.
    witness = note.Signer.generate("w1", note.COSIGNATURE_V1)
    stranger = note.Signer.generate("w2", note.COSIGNATURE_V1)
    t.__dict__["witnesses"] = [witness.verifier()]
    body, _ = note.split_note(made.note)
    line = note.cosign(body, witness, 1_800_000_000).text()
    assert await t.cosign(5, line) == "w1"
    assert await t.cosign(5, line) == "w1"  # the same line again: idempotent
    with pytest.raises(Conflict):
        await t.cosign(5, note.cosign(body, witness, 1_800_000_001).text())
    with pytest.raises(InvalidInput, match="not listed"):
        await t.cosign(5, note.cosign(body, stranger, 1_800_000_000).text())
    forged = note.cosign(body.replace("\n5\n", "\n6\n"), witness, 1_800_000_000).text()
    with pytest.raises(InvalidInput, match="does not verify"):
        await t.cosign(5, forged)
    with pytest.raises(NotFound):
        await t.cosign(9, line)
    latest = await t.latest()
    assert latest.cosigned_by == ("w1",)
    _, cosigners = note.open_checkpoint(latest.note, verifier, [witness.verifier()])
    assert cosigners == ["w1"]
    # The tables are append-only, like the log.
    async with private.engine.connect() as conn:
        with pytest.raises(Exception, match="append-only"):
            await conn.execute(text("UPDATE log_checkpoints SET size = 4"))


async def test_a_checkpoint_is_due_after_every_events_or_the_interval(private) -> None:
    t = private.transparency
    t.policy = type(t.policy)(t.policy.key_file, t.policy.origin, (), every=3, interval_s=3600)
    await register(private, "due", "v1", 1)
    assert (await t.checkpoint()).size == 1  # the first one: the log grew from nothing
    await register(private, "due", "v2", 2)
    assert await t.checkpoint() is None  # one more event: not due yet
    for v in ("v3", "v4"):
        await register(private, "due", v, 3)
    assert (await t.checkpoint()).size == 4
    entries = await private.redis.xrange("audit.checkpoints")
    assert [e[0] for e in entries] == [b"1-0", b"4-0"]
