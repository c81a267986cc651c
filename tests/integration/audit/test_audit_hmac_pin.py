"""Issue 21, hole 3: a keyless re-chain of an HMAC log, with Redis reset, no longer audits clean.

The table owner, without AUDIT_HMAC_KEY, drops one event, edits another and re-chains the
whole log as SHA-256; with Redis wiped (the relay's anchor with it) and the projections
rebuilt, the relay republishes the forged log and every stream matches it. Before the pin,
`just audit` with the key reported this log clean.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from domain.audit.integrity import GENESIS, chain_hash
from domain.registry.commands import PromoteModelVersion
from domain.registry.handlers import change_model
from storage import event_store
from storage.projections import rebuild_projections, set_checkpoint
from storage.streams.relay import ANCHOR_KEY, RELAY_CHECKPOINT, Relay
from storage.tables import event_log
from tests.integration.audit.support import META, cli, publish, register

pytestmark = pytest.mark.anyio
KEY = b"pin-" * 8


@pytest.fixture
def hmac_key():
    """New rows are HMAC'd under a key for the test, as with AUDIT_HMAC_KEY set."""
    event_store.set_hmac_key(KEY)
    yield KEY
    event_store._hmac_override.clear()


async def _rows(p) -> list:
    async with p.engine.connect() as conn:
        return list(await conn.execute(select(event_log).order_by(event_log.c.position)))


async def _three_events(p) -> None:
    await register(p, "pinned", "v1", 1)
    await register(p, "pinned", "v2", 2)
    await change_model(
        PromoteModelVersion(model_name="pinned", model_version="v1", metadata=META), META, p.uow
    )


async def _rechain_without_the_key(p, drop: set[int], edit: int) -> None:
    """What an owner without the key can do: rewrite rows and re-chain them as SHA-256."""
    rows = await _rows(p)
    prev = GENESIS
    async with p.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE event_log DISABLE TRIGGER event_log_append_only"))
        for r in rows:
            if r.position in drop:
                await conn.execute(
                    text("DELETE FROM event_log WHERE position = :n"), {"n": r.position}
                )
                continue
            row = {**r._asdict(), "hash_scheme": 2, "prev_hash": prev}
            if r.position == edit:
                row["actor"] = "mallory"
            prev = row["hash"] = chain_hash(prev, row)
            await conn.execute(
                text(
                    "UPDATE event_log SET actor = :a, hash_scheme = 2, prev_hash = :p, hash = :h "
                    "WHERE position = :n"
                ),
                {"a": row["actor"], "p": row["prev_hash"], "h": row["hash"], "n": r.position},
            )
        await conn.execute(text("ALTER TABLE event_log ENABLE TRIGGER event_log_append_only"))


async def test_the_first_hmac_row_is_a_marker_pinned_by_both_anchors(private, hmac_key) -> None:
    await _three_events(private)
    await publish(private)
    rows = await _rows(private)
    assert rows[0].event_type == "AuditKeyAdopted"
    assert {r.hash_scheme for r in rows} == {3} and len(rows) == 4
    assert b'"since_position":1' in bytes(rows[0].payload)
    assert (await private.redis.get(ANCHOR_KEY)).decode().endswith(",hmac_from=1")
    anchor = cli(private, "anchor", AUDIT_HMAC_KEY=KEY.decode()).stdout.strip()
    assert anchor.startswith("position=4,") and anchor.endswith(",hmac_from=1")
    report = await private.audit.audit(key=hmac_key)
    assert report.ok, report.findings
    assert report.checks["hmac"] == "HMAC from position 1 (marker at 1)"
    # A marker said to be elsewhere (a moved pin) is a finding.
    moved = cli(private, "audit", "--anchor", anchor.replace("hmac_from=1", "hmac_from=2"))
    assert moved.returncode == 4, moved.stdout
    assert "anchor pins HMAC from position 2, the log's marker says 1 (moved)" in moved.stdout


async def test_a_keyless_rechain_with_redis_reset_is_found_with_the_key(private, hmac_key) -> None:
    await _three_events(private)
    await publish(private)
    anchor = cli(private, "anchor", AUDIT_HMAC_KEY=KEY.decode()).stdout.strip()
    # The owner drops the marker and v2's registration, edits the promotion's actor, re-chains.
    await _rechain_without_the_key(private, drop={1, 3}, edit=4)
    await private.redis.flushdb()  # the relay's anchor, marker and streams: all gone
    async with private.engine.begin() as conn:
        await set_checkpoint(conn, RELAY_CHECKPOINT, 0)
    await rebuild_projections(private.engine)
    # A relay started afresh republishes the forged log: the streams match it. (A relay that
    # kept running would still pin position 1 in its anchor.)
    assert await Relay(private.engine, private.redis).publish_once() == 2
    assert [r.position for r in await _rows(private)] == [2, 4]
    report = await private.audit.audit(key=hmac_key)
    # Every other check passes: the forged log is consistent with itself and with Redis.
    assert {f.check for f in report.findings} == {"hmac"}, report.findings
    assert "records no AuditKeyAdopted" in report.findings[0].problem
    done = cli(private, "audit", AUDIT_HMAC_KEY=KEY.decode())
    assert done.returncode == 4, done.stdout
    assert "AUDIT_HMAC_KEY is set but the log records no AuditKeyAdopted" in done.stdout
    # The anchor line kept elsewhere pins the marker as well, key or not.
    kept = cli(private, "audit", "--anchor", anchor, AUDIT_HMAC_KEY="")
    assert kept.returncode == 4
    assert "anchor pins HMAC from position 1, but the log has no AuditKeyAdopted" in kept.stdout


async def test_a_rechain_that_keeps_the_marker_shows_too(private, hmac_key) -> None:
    await _three_events(private)
    await _rechain_without_the_key(private, drop={3}, edit=4)
    report = await private.audit.audit(key=hmac_key)
    pinned = [f for f in report.findings if f.check == "hmac"]
    assert any("not an HMAC: the log was re-chained without the key" in f.problem for f in pinned)
    # Without the key, the marker alone still says where HMAC rows must be.
    report = await private.audit.audit(key=b"")
    assert any("the first HMAC row is at None" in f.problem for f in report.findings)


async def test_an_hmac_log_from_before_the_marker_is_adopted_from_its_first_hmac_row(
    private,
) -> None:
    event_store.set_hmac_key(KEY)
    try:
        await register(private, "older", "v1", 1)
        await _drop_the_marker(private)  # as if written by code that had no marker yet
        await register(private, "older", "v2", 2)
        rows = await _rows(private)
        assert [(r.position, r.event_type) for r in rows][-2:] == [
            (3, "AuditKeyAdopted"),
            (4, "ModelVersionRegistered"),
        ]
        assert b'"since_position":2' in bytes(rows[-2].payload)
        # Dropping row 1 broke the first link, and only that.
        report = await private.audit.audit(key=KEY)
        assert [(f.check, f.position) for f in report.findings] == [("chain", 2)], report.findings
        assert report.checks["hmac"] == "HMAC from position 2 (marker at 3)"
    finally:
        event_store._hmac_override.clear()


async def _drop_the_marker(p) -> None:
    async with p.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE event_log DISABLE TRIGGER event_log_append_only"))
        await conn.execute(text("DELETE FROM event_log WHERE event_type = 'AuditKeyAdopted'"))
        await conn.execute(text("ALTER TABLE event_log ENABLE TRIGGER event_log_append_only"))
