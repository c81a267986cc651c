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
