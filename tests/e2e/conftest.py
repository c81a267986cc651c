"""HTTP fixtures: the app served in the test's own event loop, lifespan included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from api.app import create_app


@asynccontextmanager
async def app_client(app, peer: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app in this event loop, with the app's lifespan running; its
    requests come from ``peer`` (the ASGI scope's client address)."""
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app, client=(peer, 123))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest.fixture
async def client(platform) -> AsyncIterator[httpx.AsyncClient]:
    """The API on the test platform, with its relay running."""
    async with app_client(create_app(platform)) as c:
        yield c
