"""Registrations under load over HTTP: a small connection pool, many at once, never a 500."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from api.app import create_app
from bootstrap import create_engine, create_redis, wire
from tests.e2e.conftest import app_client

pytestmark = pytest.mark.anyio


async def test_twenty_concurrent_registrations_never_exhaust_the_pool_into_500s(
    test_settings, model_name, state_dict_file
) -> None:
    """16 versions and 4 repeats of one, at once, on a pool of 2 + 2 connections: each waits its
    turn (REGISTRATION_CONCURRENCY follows the pool) instead of starving the others."""
    engine = create_engine(test_settings.database.url, pool_size=2, settings=test_settings)
    p = wire(test_settings, engine, create_redis(test_settings.redis.url))
    files = {f"v{i}": state_dict_file(f"{i}.pt", i) for i in range(16)}
    requests = [(v, f) for v, f in files.items()] + [("v0", files["v0"])] * 4
    try:
        async with app_client(create_app(p, run_relay=False)) as client:

            async def register(version: str, path) -> tuple[int, dict]:
                r = await client.post(
                    f"/models/{model_name}/versions",
                    json={"model_version": version, "artifact_path": str(path)},
                )
                return r.status_code, dict(r.headers)

            answers = await asyncio.wait_for(
                asyncio.gather(*(register(v, f) for v, f in requests)), timeout=120
            )
            statuses = Counter(status for status, _ in answers)
            # Before: every one held a connection for its lock and waited for a second one
            # until the pool timed out, so all 20 were refused.
            assert statuses == {201: 20}, statuses
            listed = (await client.get(f"/models/{model_name}/versions?limit=100")).json()
            assert sorted(v["model_version"] for v in listed) == sorted(files)
            for v in listed:  # each stored file is there and is the one registered
                stored = p.artifacts.path_for(v["artifact_uri"])
                assert stored.read_bytes() == files[v["model_version"]].read_bytes()
    finally:
        await p.aclose()
