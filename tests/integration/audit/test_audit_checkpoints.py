"""`just audit` checks every signed checkpoint and the stored tree against the log itself."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.integration.audit.support import cli, lifecycle, publish, register, tamper

pytestmark = pytest.mark.anyio


async def _history(p) -> None:
    """Three checkpoints: after 5, 8 and 10 events."""
    await lifecycle(p)
    await p.transparency.checkpoint_now()
    for i in range(3):
        await register(p, "later", f"v{i}", i)
    await p.transparency.checkpoint_now()
    for i in range(3, 5):
        await register(p, "later", f"v{i}", i)
    await p.transparency.checkpoint_now()
    await publish(p)


async def test_a_clean_log_matches_every_checkpoint(private) -> None:
    await _history(private)
    report = await private.audit.audit()
    assert report.ok, report.findings
    assert report.checks["checkpoints"] == (
        "3 checkpoints, 3 match the log (signatures checked); tree of 10 entries matches"
    )
    done = cli(private, "audit")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 checkpoints, 3 match the log (signatures checked)" in done.stdout


async def test_a_rewritten_entry_is_named_at_the_first_checkpoint_it_breaks(private) -> None:
    await _history(private)
    # The owner rewrites event 7 (in the second and third checkpoints, not the first).
    position = (await _positions(private))[6]
    await tamper(
        private,
        "UPDATE event_log SET actor = 'someone-else' WHERE position = :pos",
        pos=position,
    )
    report = await private.audit.audit()
    found = [f for f in report.findings if f.check == "checkpoint"]
    assert found and "the checkpoint of size 8 no longer matches the log" in found[0].problem
    assert not any("size 5 " in f.problem for f in found)
    assert any(f.check == "tree" and "level 0" in f.problem for f in report.findings)


async def test_a_removed_tail_is_beyond_the_log(private) -> None:
    await _history(private)
    last = (await _positions(private))[-1]
    await tamper(private, "DELETE FROM event_log WHERE position = :pos", pos=last)
    report = await private.audit.audit()
    problems = [f.problem for f in report.findings if f.check in ("checkpoint", "tree")]
    assert any("size 10 is beyond the log, which holds 9 entries" in p for p in problems)
    assert any("holds 10 leaves, the log only 9 rows" in p for p in problems)


async def test_a_changed_stored_node_or_signature_is_found(private) -> None:
    await _history(private)
    async with private.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE log_tree_nodes DISABLE TRIGGER USER"))
        await conn.execute(text("UPDATE log_tree_nodes SET hash = sha256(hash) WHERE level = 2"))
        await conn.execute(text("ALTER TABLE log_tree_nodes ENABLE TRIGGER USER"))
        await conn.execute(text("ALTER TABLE log_checkpoints DISABLE TRIGGER USER"))
        await conn.execute(
            text("UPDATE log_checkpoints SET note = replace(note, '— ', '— x') WHERE size = 5")
        )
        await conn.execute(text("ALTER TABLE log_checkpoints ENABLE TRIGGER USER"))
    report = await private.audit.audit()
    problems = [f.problem for f in report.findings]
    assert (
        "the stored tree's level 2 differs from the log's (proofs served from it would not verify)"
        in problems
    )
    assert any(p.startswith("checkpoint of size 5: ") for p in problems), problems


async def _positions(p) -> list[int]:
    async with p.engine.connect() as conn:
        rows = await conn.execute(text("SELECT position FROM event_log ORDER BY position"))
        return [r.position for r in rows]
