"""Fixtures of the audit tests: each test gets a log of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import isolated
from tests.integration.audit.support import AUDIT_REDIS_DB


@pytest.fixture
async def private(test_settings) -> AsyncIterator:
    """A platform on a database and a Redis database that only this test uses."""
    import bootstrap

    async with isolated(test_settings, AUDIT_REDIS_DB, "audit") as settings:
        p = await bootstrap.build_platform(settings, run_migrations=False)
        try:
            yield p
        finally:
            await p.aclose()
