"""Fixtures of the audit tests: each test gets a log of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.integration.audit.support import AUDIT_REDIS_DB


@pytest.fixture
async def private(test_settings) -> AsyncIterator:
    """A platform on a database and a Redis database that only this test uses."""
    import bootstrap

    base = make_url(test_settings.database_url)
    name = f"audit_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    async with admin.connect() as c:
        await c.execute(text(f'CREATE DATABASE "{name}"'))
    redis = test_settings.redis_url
    settings = replace(
        test_settings,
        database_url=base.set(database=name).render_as_string(hide_password=False),
        redis_url=f"{redis}{'&' if '?' in redis else '?'}db={AUDIT_REDIS_DB}",
    )
    p = await bootstrap.build_platform(settings)
    await p.redis.flushdb()
    try:
        yield p
    finally:
        await p.redis.flushdb()
        await p.aclose()
        async with admin.connect() as c:
            await c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
