"""The chain covers every column, HMAC rows need the key, old rows still verify, two roles."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from domain.audit.integrity import GENESIS, row_hash
from domain.registry.commands import TagModelVersion
from domain.registry.handlers import change_model
from events.base import EventMetadata
from storage import event_store
from storage.tables import event_log
from tests.integration.audit.support import cli, lifecycle, publish, tamper

pytestmark = pytest.mark.anyio
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def hmac_key():
    """New rows are HMAC'd under a key for the test, as with AUDIT_HMAC_KEY set."""
    key = b"k" * 32
    event_store.set_hmac_key(key)
    yield key
    event_store._hmac_override.clear()


async def _rows(p) -> list:
    async with p.engine.connect() as conn:
        return list(await conn.execute(select(event_log).order_by(event_log.c.position)))


async def test_the_trace_context_is_stored_relayed_and_covered(private) -> None:
    await lifecycle(private)
    meta = EventMetadata(actor="tracer", trace_context=TRACE)
    cmd = TagModelVersion(model_name="audited", model_version="v1", tags={"k": "v"}, metadata=meta)
    await change_model(cmd, meta, private.uow)
    await publish(private)
    row = (await _rows(private))[-1]
    assert (row.trace_context, row.hash_scheme) == (TRACE, 2)
    entry = await private.redis.xrange("registry.events", f"{row.position}-0", f"{row.position}-0")
    assert entry[0][1][b"trace_context"] == TRACE.encode()
    assert entry[0][1][b"hash"] == bytes(row.hash).hex().encode()
    assert (await private.audit.audit()).ok
    forged = TRACE.replace("01", "00")
    await tamper(
        private,
        "UPDATE event_log SET trace_context = :t WHERE position = :n",
        t=forged,
        n=row.position,
    )
    report = await private.audit.audit()
    assert (report.findings[0].check, report.first_bad_position) == ("chain", row.position)


async def test_positions_are_covered_too(private) -> None:
    await lifecycle(private)
    # Move the last row to another position, every other column and both links kept.
    columns = ", ".join(c.name for c in event_log.columns if c.name != "position")
    move = "DELETE FROM event_log WHERE position = 5 RETURNING *"
    insert = f"INSERT INTO event_log (position, {columns}) OVERRIDING SYSTEM VALUE"
    await tamper(private, f"WITH moved AS ({move}) {insert} SELECT 9, {columns} FROM moved")  # noqa: S608
    async with private.engine.connect() as conn:
        report = await event_store.verify_chain(conn)
    assert [(b.position, b.problem) for b in report.breaks] == [
        (9, "content does not match its hash (edited)")
    ]


async def test_hmac_rows_verify_only_with_the_key_and_a_rewrite_shows(private, hmac_key) -> None:
    await lifecycle(private)
    await publish(private)
    assert {r.hash_scheme for r in await _rows(private)} == {3}
    assert (await private.audit.audit(key=hmac_key)).ok
    wrong = await private.audit.audit(key=b"x" * 32)
    assert wrong.first_bad_position == 1 and "edited" in wrong.findings[0].problem
    event_store._hmac_override[:] = [None]
    keyless = await private.audit.audit()
    assert "set AUDIT_HMAC_KEY" in keyless.findings[0].problem
    # The CLI takes the key from the environment, as the platform's processes do.
    assert cli(private, "audit", AUDIT_HMAC_KEY=hmac_key.decode()).returncode == 0
    done = cli(private, "audit", AUDIT_HMAC_KEY="")
    assert done.returncode == 4 and "first bad position 1" in done.stderr
    # Someone with owner rights but no key rewrites row 3 and re-chains the rest with SHA-256.
    rows = await _rows(private)
    prev = bytes(rows[1].hash)
    async with private.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE event_log DISABLE TRIGGER event_log_append_only"))
        for r in rows[2:]:
            row = {**r._asdict(), "hash_scheme": 2, "prev_hash": prev}
            if r.position == 3:
                row["actor"] = "mallory"
            from domain.audit.integrity import chain_hash

            prev = row["hash"] = chain_hash(prev, row)
            await conn.execute(
                text(
                    "UPDATE event_log SET actor = :a, hash_scheme = 2, prev_hash = :p, hash = :h "
                    "WHERE position = :n"
                ),
                {"a": row["actor"], "p": row["prev_hash"], "h": row["hash"], "n": r.position},
            )
        await conn.execute(text("ALTER TABLE event_log ENABLE TRIGGER event_log_append_only"))
    report = await private.audit.audit(key=hmac_key)
    chain = [f for f in report.findings if f.check == "chain"]
    assert chain[0].position == 3 and "hash scheme 2 after scheme 3" in chain[0].problem
    assert report.first_bad_position == 3


async def test_rows_from_before_the_hash_scheme_still_verify(private) -> None:
    meta = {"actor": "old", "correlation_id": uuid.uuid4(), "causation_id": None}
    async with private.engine.begin() as conn:
        prev = GENESIS
        for version in (1, 2):
            row = {
                "stream_id": "legacy-1",
                "stream_version": version,
                "event_id": uuid.uuid4(),
                "event_type": "ModelVersionTagged",
                "schema_version": 1,
                "payload": b'{"type":"ModelVersionTagged","model_name":"old","model_version":"v",'
                b'"tags":{}}',
                "recorded_at": (await conn.scalar(text("SELECT now()"))),
                **meta,
            }
            row["hash"] = row_hash(prev, **row)
            await conn.execute(event_log.insert().values(**row, prev_hash=prev, hash_scheme=1))
            prev = row["hash"]
    await lifecycle(private)
    async with private.engine.connect() as conn:
        report = await event_store.verify_chain(conn)
    assert report.ok and report.checked == 7
    await tamper(private, "UPDATE event_log SET trace_context = 'x' WHERE position = 2")
    await tamper(private, "UPDATE event_log SET hash_scheme = 1 WHERE position = 5")
    async with private.engine.connect() as conn:
        report = await event_store.verify_chain(conn)
    problems = {b.position: b.problem for b in report.breaks}
    assert "trace context its hash does not cover" in problems[2]
    assert "hash scheme 1 after scheme 2" in problems[5]


async def test_the_application_role_can_append_but_not_change_the_log(private) -> None:
    import bootstrap

    role = f"app_{uuid.uuid4().hex[:8]}"
    owner_url = private.settings.database.url
    app_url = make_url(owner_url).set(username=role, password="app-secret")
    settings = private.settings.changed(
        database={"url": app_url.render_as_string(hide_password=False), "migration_url": owner_url}
    )
    app = await bootstrap.build_platform(settings)  # the owner migrates and grants the role
    try:
        async with app.engine.connect() as conn:
            assert await conn.scalar(text("SELECT current_user")) == role
        await lifecycle(app)  # appends, projections, checkpoints
        assert await publish(app) == 5
        assert (await app.audit.audit()).ok  # reads, and scratch tables are temporary
        for sql in (
            "UPDATE event_log SET actor = 'mallory'",
            "DELETE FROM event_log",
            "TRUNCATE event_log",
            "ALTER TABLE event_log DISABLE TRIGGER event_log_append_only",
        ):
            with pytest.raises(DBAPIError, match=r"permission denied|must be owner"):
                async with app.engine.begin() as conn:
                    await conn.execute(text(sql))
    finally:
        await app.aclose()
        async with private.engine.begin() as conn:
            await conn.execute(text(f'DROP OWNED BY "{role}"'))
            await conn.execute(text(f'DROP ROLE "{role}"'))
