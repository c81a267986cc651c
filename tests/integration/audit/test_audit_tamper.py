"""`just audit`: a clean system passes; four kinds of tampering are each named with their position."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from storage.tables import event_log
from tests.integration.audit.support import cli, lifecycle, publish, tamper

pytestmark = pytest.mark.anyio


async def _last(p, stream_prefix: str = "model-") -> tuple[int, str]:
    async with p.engine.connect() as conn:
        row = (
            await conn.execute(
                select(event_log.c.position, event_log.c.event_type)
                .where(event_log.c.stream_id.startswith(stream_prefix))
                .order_by(event_log.c.position.desc())
                .limit(1)
            )
        ).one()
    return row.position, row.event_type


async def test_a_clean_system_audits_clean_and_the_cli_exits_0(private) -> None:
    await lifecycle(private)
    assert await publish(private) == 5
    report = await private.audit.audit()
    assert report.ok, report.findings
    assert report.events == 5
    assert "0 differences" in report.checks["projections"]
    streams = report.checks["streams"]
    assert "registry.events 5, traffic.events 0; 0 fetched whole; 0 differences" in streams
    assert report.checks["relay anchor"] == "position 5 held"
    done = cli(private, "audit")
    assert done.returncode == 0, done.stderr
    assert "audit clean: 5 events up to position 5" in done.stdout


async def test_edited_payload_is_named_with_its_position(private) -> None:
    await lifecycle(private)
    await publish(private)
    async with private.engine.connect() as conn:
        position = await conn.scalar(
            select(event_log.c.position).where(event_log.c.event_type == "ModelVersionPromoted")
        )
    payload = b'{"type":"ModelVersionPromoted","model_name":"audited","model_version":"v2"}'
    await tamper(
        private, "UPDATE event_log SET payload = :b WHERE position = :n", b=payload, n=position
    )
    report = await private.audit.audit()
    assert not report.ok
    assert report.first_bad_position == position
    chain = [f for f in report.findings if f.check == "chain"]
    assert chain[0].position == position and "edited" in chain[0].problem
    # Redis still holds what was published: the stream check sees the same row differ.
    streams = [f for f in report.findings if f.check == "streams"]
    assert streams and streams[0].position == position and "payload" in streams[0].problem
    done = cli(private, "audit")
    assert done.returncode == 4
    assert f"first bad position {position}" in done.stderr


async def test_deleted_last_event_is_named_by_the_streams_and_the_anchor(private) -> None:
    await lifecycle(private)
    await publish(private)
    anchor = cli(private, "anchor").stdout.strip()
    last, _ = await _last(private)
    assert anchor.startswith(f"position={last},hash=")
    await tamper(private, "DELETE FROM event_log WHERE position = :n", n=last)
    async with private.engine.connect() as conn:
        assert (await event_store_verify(conn)).ok  # the chain alone cannot see a deleted tail
    report = await private.audit.audit()
    assert report.first_bad_position == last
    checks = {f.check for f in report.findings if f.position == last}
    assert {"streams", "relay anchor"} <= checks
    # The rollback's effect is still in the projection although its event is gone.
    assert any(f.check == "projections" for f in report.findings)
    done = cli(private, "audit", "--anchor", anchor)
    assert done.returncode == 4
    assert f"anchored head at position {last} is missing" in done.stdout
    assert f"first bad position {last}" in done.stderr
    # `just verify` checks the relay's anchor too, so it no longer calls this log intact.
    verified = cli(private, "verify")
    assert verified.returncode == 4, verified.stdout
    assert f"failed at position {last}" in verified.stdout + verified.stderr


async def event_store_verify(conn):
    """The plain chain check (what `just verify` runs)."""
    from storage import event_store

    return await event_store.verify_chain(conn)


async def test_a_kept_anchor_holds_while_the_log_grows(private) -> None:
    await lifecycle(private)
    anchor = cli(private, "anchor").stdout.strip()
    await lifecycle(private, "another")
    await publish(private)
    done = cli(private, "audit", "--anchor", anchor)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "anchor        position 5 held" in done.stdout
    malformed = cli(private, "audit", "--anchor", "position=5,hash=zz")
    assert malformed.returncode == 1 and "lacks time" in malformed.stderr
    malformed = cli(private, "audit", "--anchor", anchor.replace("hash=", "hash=zz"))
    assert malformed.returncode == 1 and "malformed" in malformed.stderr
    position, _, time = anchor.split(",")
    rewritten = cli(private, "audit", "--anchor", f"{position},hash={'0' * 64},{time}")
    assert rewritten.returncode == 4
    assert "the chain was rewritten" in rewritten.stdout


async def test_deleted_projection_row_is_named(private) -> None:
    await lifecycle(private)
    await publish(private)
    last, _ = await _last(private)
    async with private.engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM model_versions WHERE model_name = 'audited' AND model_version = 'v1'")
        )
    report = await private.audit.audit()
    assert [f.check for f in report.findings] == ["projections"]
    finding = report.findings[0]
    assert finding.position == last
    assert "model_versions row ('audited', 'v1') is missing from the live table" in finding.problem


async def test_changed_projection_column_is_named(private) -> None:
    await lifecycle(private)
    async with private.engine.begin() as conn:  # as the owner: only it may disable the guard
        await conn.execute(text("ALTER TABLE model_prod DISABLE TRIGGER model_prod_match_log"))
        await conn.execute(text("UPDATE model_prod SET model_version = 'v2'"))
        await conn.execute(text("ALTER TABLE model_prod ENABLE TRIGGER model_prod_match_log"))
    report = await private.audit.audit(key=None)
    assert len(report.findings) == 1
    assert "model_prod row ('audited',) differs from the log in model_version" in (
        report.findings[0].problem
    )


async def test_dropped_stream_entry_is_named(private) -> None:
    await lifecycle(private)
    await publish(private)
    await private.redis.xdel("registry.events", "3-0")
    report = await private.audit.audit()
    assert [(f.check, f.position) for f in report.findings] == [("streams", 3)]
    assert "registry.events lacks entry 3-0" in report.findings[0].problem


async def test_altered_stream_entry_is_named(private) -> None:
    await lifecycle(private)
    await publish(private)
    # Redis cannot edit an entry in place: rebuild the stream with one entry's actor changed.
    entries = await private.redis.xrange("registry.events")
    await private.redis.delete("registry.events")
    for entry_id, fields in entries:
        if entry_id == b"4-0":
            fields = {**fields, b"actor": b"mallory"}
        await private.redis.xadd("registry.events", fields, id=entry_id)
    report = await private.audit.audit()
    assert [(f.check, f.position) for f in report.findings] == [("streams", 4)]
    assert "differs from the log in actor" in report.findings[0].problem
    # An entry the log never had is named too.
    await private.redis.xadd("registry.events", {"type": "Forged"}, id="5-1")
    report = await private.audit.audit()
    assert ("streams", 5) in [(f.check, f.position) for f in report.findings]
    assert any("registry.events holds entry 5-1" in f.problem for f in report.findings)


async def test_unpublished_events_are_not_expected_in_redis(private) -> None:
    await lifecycle(private)
    await publish(private)
    await lifecycle(private, "later")  # not relayed yet
    report = await private.audit.audit()
    assert report.ok, report.findings
    async with private.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(event_log)) == 10


async def test_redis_and_python_hash_entries_alike(private) -> None:
    from storage.audit.stream_digests import _lua_batch, _plain_batch

    await lifecycle(private)
    await publish(private)
    by_redis = await _lua_batch(private.redis, "registry.events", "-", 10)
    here = await _plain_batch(private.redis, "registry.events", "-", 10)
    assert len(by_redis) == 5 and by_redis == here
