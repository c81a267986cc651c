"""Fixtures for pipeline tests: worker processes and an in-process relay, on the test servers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, isolated


@pytest.fixture(scope="session")
def shared_artifacts(tmp_path_factory) -> Path:
    """One artifact store for every pipeline test, so any worker can serve any test's job."""
    return tmp_path_factory.mktemp("pipeline-artifacts")


@pytest.fixture
async def pipeline_settings(test_settings, shared_artifacts) -> AsyncIterator:
    """Test settings on the shared artifact store, a database and a Redis database of its own.

    Workers read whole streams: on the shared ones they would also take every earlier test's
    unfinished shards (whose models live in other tests' folders) and spend the test on them.
    """

    shared = test_settings.changed(files={"artifacts_dir": shared_artifacts})
    async with isolated(shared, 12, "pipe") as s:
        yield s


@pytest.fixture
async def pipeline(pipeline_settings) -> AsyncIterator:
    """A platform with the relay running, as an API process would run it."""
    import bootstrap
    from storage.streams.relay import Relay

    p = await bootstrap.build_platform(pipeline_settings, run_migrations=False)
    stop = asyncio.Event()
    relay = asyncio.create_task(Relay(p.engine, p.redis, 0.02).run(stop))
    try:
        yield p
    finally:
        stop.set()
        await relay
        await p.aclose()


@pytest.fixture
def start_worker(pipeline_settings):
    """Factory: start ``python -m consumers`` on the test servers; all are stopped at teardown."""
    procs: list[subprocess.Popen] = []

    def start(**env_overrides: str) -> subprocess.Popen:
        env = {
            **os.environ,
            "DATABASE_URL": pipeline_settings.database.url,
            "REDIS_URL": pipeline_settings.redis.url,
            "ARTIFACTS_DIR": str(pipeline_settings.files.artifacts_dir),
            "CLAIM_IDLE_MS": "1500",
            "MAX_DELIVERIES": "3",
            "TORCH_THREADS": "1",
            "LOG_LEVEL": "warning",
            "PYTHONPATH": str(ROOT),
            **env_overrides,
        }
        proc = subprocess.Popen([sys.executable, "-m", "consumers"], cwd=ROOT, env=env)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
