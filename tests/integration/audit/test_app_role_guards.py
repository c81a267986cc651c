"""The application role cannot forge what authentication and serving read (issue 21, item 6).

The owner migrates and grants as docs/audit.md says; the test then connects as the application
role and tries to insert an admin key's hash, to raise a console session's role, to switch prod,
to point a version at another artifact, and to delete a live key or prod row, with no event. Each is refused by a trigger the
role can neither drop nor disable. The platform's own handlers and a rebuild still work.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from domain.keys.aggregate import hash_key
from domain.keys.commands import CreateApiKey, RevokeApiKey
from domain.registry.commands import PromoteModelVersion
from tests.integration.audit.support import META, lifecycle, register

pytestmark = pytest.mark.anyio
REFUSED = r"refused|must be owner|permission denied"
ADMIN_SECRET = "iep_" + "m" * 43  # a key the attacker chose; its hash is what they insert


@pytest.fixture
async def app(private) -> AsyncIterator:
    """A platform connected as a fresh application role, migrated and granted by the owner."""
    import bootstrap

    role = f"app_{uuid.uuid4().hex[:8]}"
    owner_url = private.settings.database.url
    app_url = make_url(owner_url).set(username=role, password="app-secret")
    settings = private.settings.changed(
        database={"url": app_url.render_as_string(hide_password=False), "migration_url": owner_url}
    )
    p = await bootstrap.build_platform(settings)
    try:
        async with p.engine.connect() as conn:
            assert await conn.scalar(text("SELECT current_user")) == role
        yield p
    finally:
        await p.aclose()
        async with private.engine.begin() as conn:
            await conn.execute(text(f'DROP OWNED BY "{role}"'))
            await conn.execute(text(f'DROP ROLE "{role}"'))


async def _refused(p, *statements: str, **params) -> None:
    """Each statement, alone in its transaction, fails (at once or at commit)."""
    for sql in statements:
        with pytest.raises(DBAPIError, match=REFUSED):
            async with p.engine.begin() as conn:
                await conn.execute(text(sql), params)


async def _prod(p, model: str) -> str | None:
    return await p.queries.require_prod(model)


async def test_the_app_role_cannot_forge_a_key_or_switch_prod(app) -> None:
    await lifecycle(app)  # v1, v2 registered; v1, v2 promoted; rolled back: prod is v1
    await app.bus.handle(CreateApiKey(key_name="ops", role="operator", metadata=META))
    forged = hash_key(ADMIN_SECRET)

    # (a) an admin key with no ApiKeyCreated event: inserted, or made from a real key's row.
    await _refused(
        app,
        "INSERT INTO api_keys (key_name, role, key_hash, active, created_at, created_by, "
        "updated_at) VALUES ('mallory', 'admin', :h, true, now(), 'mallory', now())",
        "UPDATE api_keys SET role = 'admin' WHERE key_name = 'ops'",
        "UPDATE api_keys SET key_hash = :h WHERE key_name = 'ops'",
        "UPDATE api_keys SET key_name = 'mallory', key_hash = :h WHERE key_name = 'ops'",
        "DELETE FROM api_keys",  # no key left would reopen anonymous use on loopback
        "TRUNCATE api_keys",  # would skip the row triggers: never granted
        h=forged,
    )
    assert await app.keys.identify(forged) is None
    # A console session authenticates with its own role: it may not raise the key's.
    session = (
        "INSERT INTO console_sessions (session_hash, key_hash, key_name, role, csrf_secret) "
        "SELECT :s, key_hash, key_name, :r, 'c' FROM api_keys WHERE key_name = 'ops'"
    )
    await _refused(app, session, s="forged", r="admin")
    async with app.engine.begin() as conn:  # the key's own name and role: a real login's row
        await conn.execute(text(session), {"s": "real", "r": "operator"})
    await _refused(app, "UPDATE console_sessions SET role = 'admin' WHERE session_hash = 'real'")
    assert [(k.key_name, k.role, k.active) for k in await app.keys.list_keys(None, 10)] == [
        ("ops", "operator", True)
    ]

    # (b) prod switched to a version nobody promoted, for a known model or a new one.
    await _refused(
        app,
        "UPDATE model_prod SET model_version = 'v2' WHERE model_name = 'audited'",
        "UPDATE model_prod SET model_version = NULL WHERE model_name = 'audited'",
        "DELETE FROM model_prod WHERE model_name = 'audited'",
        "INSERT INTO model_prod (model_name, model_version, since, prod_stack) "
        "VALUES ('ghost', 'v1', now(), '[]')",
        # the artifact serving loads for the prod version: v2's file under v1's name
        "UPDATE model_versions SET artifact_uri = 'audited/v2/model.pt', sha256 = :v2 "
        "WHERE model_name = 'audited' AND model_version = 'v1'",
        v2=f"{2:064x}",
    )
    assert await _prod(app, "audited") == "v1"

    # The guards belong to the owner: the role can neither drop nor disable them.
    await _refused(
        app,
        "ALTER TABLE api_keys DISABLE TRIGGER api_keys_match_log",
        "DROP TRIGGER model_prod_match_log ON model_prod",
        "CREATE OR REPLACE FUNCTION model_prod_expected(name text) RETURNS text "
        "LANGUAGE sql AS $$ SELECT 'v2' $$",
    )


async def test_the_grants_warn_of_nothing(private, app) -> None:
    from storage.audit.roles import grant_app_role

    notes = await grant_app_role(private.engine, app.engine.url)  # idempotent, as each start
    assert not [n for n in notes if "warning" in n]
    async with private.engine.connect() as conn:
        owners = await conn.scalars(
            text(
                "SELECT DISTINCT c.relowner::regrole::text FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal "
                "AND c.relname IN ('api_keys', 'model_prod', 'model_versions', 'console_sessions')"
            )
        )
        assert list(owners) == [await conn.scalar(text("SELECT current_user"))]


async def test_a_temporary_event_log_does_not_fool_the_guard(app) -> None:
    await lifecycle(app)
    async with app.engine.connect() as conn:
        # pg_temp comes first on a default search_path; the guards pin it last.
        await conn.execute(text("CREATE TEMP TABLE event_log AS SELECT * FROM event_log"))
        await conn.execute(
            text(
                "INSERT INTO event_log SELECT position + 1000, stream_id, 99, gen_random_uuid(), "
                "'ModelVersionPromoted', schema_version, convert_to(replace(convert_from("
                "payload, 'UTF8'), 'ModelVersionRegistered', 'ModelVersionPromoted'), 'UTF8'), "
                "actor, correlation_id, causation_id, trace_context, recorded_at, prev_hash, "
                "hash, hash_scheme FROM event_log WHERE event_type = 'ModelVersionRegistered' "
                "AND stream_version = 2"
            )
        )
        with pytest.raises(DBAPIError, match="refused"):
            await conn.execute(
                text("UPDATE model_prod SET model_version = 'v2' WHERE model_name = 'audited'")
            )
        await conn.rollback()
    assert await _prod(app, "audited") == "v1"


async def test_the_platform_still_writes_and_rebuilds_as_the_app_role(app) -> None:
    await lifecycle(app)
    await register(app, "audited", "v3", 3)
    await app.bus.handle(
        PromoteModelVersion(model_name="audited", model_version="v3", metadata=META)
    )
    created = await app.bus.handle(CreateApiKey(key_name="root", role="admin", metadata=META))
    await app.bus.handle(CreateApiKey(key_name="ops", role="operator", metadata=META))
    await app.bus.handle(RevokeApiKey(key_name="ops", reason="rotated", metadata=META))
    assert await _prod(app, "audited") == "v3"
    identity = await app.keys.identify(hash_key(created.secret))
    assert identity is not None and identity.role == "admin"

    assert await app.ops.rebuild_projections() >= 3  # every row deleted and written again
    assert await _prod(app, "audited") == "v3"
    assert (await app.keys.identify(hash_key(created.secret))).role == "admin"
    assert [k.key_name for k in await app.keys.list_keys(None, 10) if k.active] == ["root"]
    assert (await app.audit.audit()).ok
