"""PostgreSQL limits over HTTP: an exhausted pool and a stalled holder of the log's lock are
503 with Retry-After, never a hang or a 500; `just servers` never prints a password."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from api.app import create_app
from bootstrap import create_engine, create_redis, wire
from storage import event_store
from tests.conftest import ROOT
from tests.e2e.conftest import app_client

pytestmark = pytest.mark.anyio


async def test_an_exhausted_pool_is_503_with_retry_after(test_settings) -> None:
    settings = test_settings.changed(database={"pool_size": 1, "pool_timeout_s": 0.5})
    p = wire(
        settings,
        create_engine(settings.database.url, settings=settings),
        create_redis(settings.redis.url),
    )
    try:
        async with app_client(create_app(p, run_relay=False)) as client:
            async with p.engine.connect() as a, p.engine.connect() as b:  # the whole pool
                await a.execute(text("SELECT 1"))
                await b.execute(text("SELECT 1"))
                r = await client.get("/models")
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"]
            assert "pool is exhausted" in r.json()["detail"]
            assert (await client.get("/models")).status_code == 200  # and it recovers
    finally:
        await p.aclose()


async def test_a_stalled_holder_of_the_log_lock_does_not_freeze_appends(
    test_settings, model_name, state_dict_file
) -> None:
    """A session takes the appenders' lock and stalls inside its transaction: appends get 503
    after DB_LOCK_TIMEOUT_MS, and once DB_IDLE_IN_TRANSACTION_TIMEOUT_MS ends that session,
    they succeed again."""
    settings = test_settings.changed(
        database={"lock_timeout_ms": 300, "idle_in_transaction_timeout_ms": 2000}
    )
    p = wire(
        settings,
        create_engine(settings.database.url, settings=settings),
        create_redis(settings.redis.url),
    )
    tag = f"/models/{model_name}/versions/v1/tags"
    try:
        async with app_client(create_app(p, run_relay=False)) as client:
            r = await client.post(
                f"/models/{model_name}/versions",
                json={"model_version": "v1", "artifact_path": str(state_dict_file())},
            )
            assert r.status_code == 201, r.text
            stalled = await p.engine.connect()
            await stalled.begin()
            await event_store.lock_appends(stalled)  # ... and then it never commits
            r = await asyncio.wait_for(client.put(tag, json={"tags": {"a": "1"}}), 20)
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] and "lock wait timed out" in r.json()["detail"]
            deadline = time.monotonic() + 30
            while (r := await client.put(tag, json={"tags": {"a": "2"}})).status_code == 503:
                assert time.monotonic() < deadline, "the stalled session was never ended"
                await asyncio.sleep(0.2)
            assert r.status_code == 200, r.text
            with pytest.raises(DBAPIError):  # the server ended the stalled session
                await stalled.close()
    finally:
        await p.aclose()


def test_servers_never_prints_a_password(server_urls, tmp_path) -> None:
    url = make_url(server_urls["database_url"]).set(password="s3cret-pw")
    env = {
        **os.environ,
        "DATABASE_URL": url.render_as_string(hide_password=False),
        "REDIS_URL": server_urls["redis_url"],
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-m", "cli", "servers"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "s3cret-pw" not in out.stdout + out.stderr
    assert "***" in out.stdout


def test_url_masking_covers_redis_and_postgres() -> None:
    from cli.registry_commands import masked_url

    assert masked_url("redis://:pw@host:6379/0") == "redis://:***@host:6379/0"
    assert masked_url("redis://user:pw@host/0") == "redis://user:***@host/0"
    assert masked_url("postgresql+asyncpg://app:pw@db/x") == "postgresql+asyncpg://app:***@db/x"
    assert masked_url("redis+unix:///tmp/r.sock") == "redis+unix:///tmp/r.sock"
