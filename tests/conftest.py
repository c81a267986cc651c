"""Shared fixtures: real servers (the URLs from the environment, else embedded ones)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Tests get their own embedded servers so they never disturb a running demo.
os.environ.setdefault("STATE_DIR", str(ROOT / ".platform" / "test-servers"))
os.environ.setdefault("LOG_LEVEL", "warning")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"


@pytest.fixture(scope="session")
def server_urls():
    """Start (or find) PostgreSQL and Redis once, and migrate the schema.

    Embedded servers this session started are stopped at its end; ones already running
    (a developer's) are left alone.
    """
    import bootstrap
    from settings import get_settings
    from storage import embedded

    state = get_settings().files.state_dir
    already_running = (state / "postgres" / "postmaster.pid").exists() or (
        state / "redis" / "redis.pid"
    ).exists()
    db, redis = bootstrap.database_url(), bootstrap.redis_url()

    async def _migrate() -> None:
        engine = bootstrap.create_engine(db)
        await bootstrap.migrate(engine)
        await engine.dispose()

    asyncio.run(_migrate())
    yield {"database_url": db, "redis_url": redis}
    embedded_used = not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))
    if embedded_used and not already_running:
        embedded.stop_all(state)


@pytest.fixture
def test_settings(server_urls: dict[str, str], tmp_path: Path, tmp_path_factory):
    """Settings bound to the test servers, with a private artifact store."""
    from settings import Settings

    return Settings().changed(
        database={"url": server_urls["database_url"]},
        redis={"url": server_urls["redis_url"], "relay_interval_s": 0.02},
        files={
            "artifacts_dir": tmp_path / "artifacts",
            "artifact_import_roots": (tmp_path_factory.getbasetemp(), ROOT),
        },
        serving={"warm_up": False},  # other tests' prod models live in their own tmp folders
        transparency={"signing_key_file": tmp_path / "audit-signing.key"},
    )


@contextlib.asynccontextmanager
async def isolated(settings, redis_db: int, prefix: str) -> AsyncIterator:
    """``settings`` on a fresh, migrated database and an emptied Redis database index.

    For tests whose subject reads whole streams or the whole log (workers, relay, audit):
    on the shared database they would also meet every earlier test's jobs and events.
    """
    import redis.asyncio as aioredis
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    import bootstrap

    base = make_url(settings.database.url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    async with admin.connect() as c:
        await c.execute(text(f'CREATE DATABASE "{name}"'))
    redis = settings.redis.url
    own = settings.changed(
        database={"url": base.set(database=name).render_as_string(hide_password=False)},
        redis={"url": f"{redis}{'&' if '?' in redis else '?'}db={redis_db}"},
    )
    engine = bootstrap.create_engine(own.database.url)
    await bootstrap.migrate(engine)
    await engine.dispose()
    client = aioredis.Redis.from_url(own.redis.url)
    await client.flushdb()
    try:
        yield own
    finally:
        with contextlib.suppress(Exception):  # a test may have restarted Redis: nothing to empty
            await client.flushdb()
        await client.aclose()
        async with admin.connect() as c:
            await c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
async def platform(test_settings) -> AsyncIterator:
    """A wired platform on the test servers."""
    import bootstrap

    p = await bootstrap.build_platform(test_settings, run_migrations=False)
    try:
        yield p
    finally:
        await p.aclose()


@pytest.fixture
def model_name() -> str:
    """A model name no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def state_dict_file(tmp_path: Path):
    """Factory: write a small torch state dict and return its path."""
    import torch

    def make(name: str = "model.pt", seed: int = 0) -> Path:
        g = torch.Generator().manual_seed(seed)
        path = tmp_path / name
        torch.save({"fc.weight": torch.randn(4, 3, generator=g), "fc.bias": torch.zeros(4)}, path)
        return path

    return make


@pytest.fixture(scope="session")
def trained_artifacts(tmp_path_factory) -> dict[str, Path]:
    """Two small mnist_cnn models really trained on 2,000 fashion_mnist train images.

    They differ only by seed, so tests can tell which version answered.
    """
    from bench.small_models import train_small_models
    from settings import get_settings

    folder = tmp_path_factory.mktemp("trained")
    return train_small_models(folder, get_settings().files.data_dir, ROOT / ".platform" / "cache")
