"""The console's latest audit lives in PostgreSQL: Redis losing it, or a forged Redis key,
changes nothing (before, it was the Redis key platform:console:latest-audit)."""

from __future__ import annotations

import msgspec
import pytest
from sqlalchemy import func, select

from storage.tables import audit_runs
from tests.integration.audit.support import cli, lifecycle, publish

pytestmark = pytest.mark.anyio


async def test_the_latest_audit_is_kept_in_postgresql(private) -> None:
    await lifecycle(private)
    await publish(private)
    assert cli(private, "audit").returncode == 0
    await private.redis.flushdb()
    forged = {"report": {"events": 99}, "finished_at": "2030-01-01T00:00:00Z", "actor": "x"}
    await private.redis.set("platform:console:latest-audit", msgspec.json.encode(forged))
    run = await private.console.latest_audit()
    assert run is not None and run.source == "cli"
    assert (run.report.events, run.report.ok) == (5, True)
    report = await private.audit.audit()
    await private.console.record_audit(report, "console-user", "console")
    latest = await private.console.latest_audit()
    assert (latest.actor, latest.source) == ("console-user", "console")
    async with private.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(audit_runs)) == 2


async def test_the_application_role_records_runs_but_cannot_change_them(private) -> None:
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    import bootstrap

    role = f"app_{uuid.uuid4().hex[:8]}"
    owner_url = private.settings.database.url
    app_url = make_url(owner_url).set(username=role, password="app-secret")
    settings = private.settings.changed(
        database={"url": app_url.render_as_string(hide_password=False), "migration_url": owner_url}
    )
    app = await bootstrap.build_platform(settings)  # the owner migrates and grants the role
    try:
        await app.console.record_audit(await app.audit.audit(), "app", "console")
        assert (await app.console.latest_audit()).actor == "app"
        for sql in ("UPDATE audit_runs SET ok = true", "DELETE FROM audit_runs"):
            with pytest.raises(DBAPIError, match="permission denied"):
                async with app.engine.begin() as conn:
                    await conn.execute(text(sql))
    finally:
        await app.aclose()
        async with private.engine.begin() as conn:
            await conn.execute(text(f'DROP OWNED BY "{role}"'))
            await conn.execute(text(f'DROP ROLE "{role}"'))
