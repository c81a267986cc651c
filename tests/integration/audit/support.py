"""Audit test support: a private database and Redis database per test, and a small history.

An audit checks the whole log, every projection and every stream, so each test gets a log
of its own: a fresh database on the test PostgreSQL and an emptied Redis database index.
"""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import text

from domain.registry.commands import PromoteModelVersion, RecordRegistration, RollbackModel
from domain.registry.handlers import change_model
from events.base import EventMetadata
from tests.conftest import ROOT

AUDIT_REDIS_DB = 11  # the shared fixtures use database 0 of the same server
META = EventMetadata(actor="auditor-test")


async def register(p, model: str, version: str, n: int = 0) -> None:
    """Record a registration through the registry handler (no artifact file needed)."""
    cmd = RecordRegistration(
        model_name=model,
        model_version=version,
        artifact_uri=f"{model}/{version}/model.pt",
        sha256=f"{n:064x}",
        size_bytes=10,
    )
    await change_model(cmd, META, p.uow)


async def lifecycle(p, model: str = "audited") -> None:
    """register v1, v2; promote v1, v2; roll back: a small realistic history."""
    await register(p, model, "v1", 1)
    await register(p, model, "v2", 2)
    for version in ("v1", "v2"):
        await change_model(
            PromoteModelVersion(model_name=model, model_version=version, metadata=META), META, p.uow
        )
    await change_model(
        RollbackModel(model_name=model, reason="v2 regressed", metadata=META), META, p.uow
    )


async def publish(p) -> int:
    """Relay everything pending to the private Redis database."""
    import bootstrap

    return await bootstrap.build_relay(p).publish_once()


async def tamper(p, sql: str, **params) -> None:
    """Change the log as its owner would: with the append-only trigger disabled, committed."""
    async with p.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE event_log DISABLE TRIGGER event_log_append_only"))
        await conn.execute(text(sql), params)
        await conn.execute(text("ALTER TABLE event_log ENABLE TRIGGER event_log_append_only"))


def cli(p, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``python -m cli ARGS`` on the private servers."""
    environ = {
        **os.environ,
        "DATABASE_URL": p.settings.database.url,
        "REDIS_URL": p.settings.redis.url,
        "ARTIFACTS_DIR": str(p.settings.files.artifacts_dir),
        "AUDIT_SIGNING_KEY_FILE": str(p.transparency.policy.key_file),
        "PYTHONPATH": str(ROOT),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
