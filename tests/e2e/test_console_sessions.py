"""Console sessions live on the server (issue 21, item 2): each test runs the attack that worked
when the cookie held ``<session id>:<API key>`` and logout only deleted the cookie."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from api.app import create_app
from domain.console.sessions import session_hash
from domain.keys.commands import RevokeApiKey
from events.base import EventMetadata
from storage.tables import console_sessions

pytestmark = pytest.mark.anyio
ADMIN = "admin-session-key-0123456789"
OPERATOR = "operator-session-key-0123456789"
KEYS = {ADMIN: ("admin-sess", "admin"), OPERATOR: ("operator-sess", "operator")}
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
PLAIN, SECURE = "iep_console", "__Host-iep_console"
ELSEWHERE = "192.0.2.10"  # not loopback (TEST-NET-1); nothing listens, the app runs in-process


@pytest.fixture
async def console(platform, test_settings) -> AsyncIterator:
    """``console(key, base=..., **security)``: a client logged in on an app with those settings."""

    @asynccontextmanager
    async def session(key: str | None, base: str = "http://testserver", host=None, **security):
        settings = test_settings.changed(
            security={"api_keys": KEYS, "rate_limit_per_s": 0, **security},
            api={"host": host or test_settings.api.host},
        )
        app = create_app(platform, settings=settings)
        async with app.lifespan():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=base) as c:
                if key:
                    r = await c.post("/ui/login", data={"key": key})
                    assert r.status_code == 303, r.text
                yield c

    return session


def _cookie(c: httpx.AsyncClient) -> str:
    value = c.cookies.get(SECURE) or c.cookies.get(PLAIN)
    assert value, "the login set no session cookie"
    return value


async def _replay(
    console, value: str, name: str = PLAIN, base: str = "http://testserver", host=None
) -> int:
    """The status of a console page fetched by a fresh client holding only a copied cookie."""
    async with console(None, base=base, host=host) as thief:
        thief.cookies.set(name, value)
        return (await thief.get("/ui/models")).status_code


async def _age(platform, value: str, column: str, minutes: int) -> None:
    """Move a session's ``column`` back in time, as if that long had passed."""
    moved = console_sessions.c[column]
    q = (
        update(console_sessions)
        .where(console_sessions.c.session_hash == session_hash(value))
        .values({moved: moved - timedelta(minutes=minutes)})
    )
    async with platform.engine.begin() as conn:
        assert (await conn.execute(q)).rowcount == 1


async def test_a_stolen_cookie_is_not_the_key_and_opens_no_api(console, platform) -> None:
    async with console(OPERATOR) as c:
        value = _cookie(c)
        assert OPERATOR not in value and ":" not in value
        for attempt in (value, *value.split(":")):
            r = await c.get("/models", headers={"x-api-key": attempt})
            assert r.status_code == 401, attempt
        # The server keeps no copy of the key or of the cookie's id either.
        async with platform.engine.connect() as conn:
            rows = (await conn.execute(select(console_sessions))).mappings().all()
        dumped = repr([dict(r) for r in rows])
        assert OPERATOR not in dumped and value not in dumped and session_hash(value) in dumped


async def test_after_logout_the_old_cookie_is_refused(console) -> None:
    async with console(OPERATOR) as c:
        value = _cookie(c)
        assert await _replay(console, value) == 200  # the copy works while the session lives
        page = await c.get("/ui/models")
        r = await c.post("/ui/logout", data={"csrf_token": CSRF.search(page.text).group(1)})
        assert r.status_code == 303
        assert await _replay(console, value) == 302  # to the login: the session is gone


async def test_an_idle_session_and_an_old_one_are_refused(console, platform) -> None:
    async with console(OPERATOR, console_idle_s=1800, console_max_s=8 * 3600) as c:
        idle = _cookie(c)
        await _age(platform, idle, "last_seen_at", 29)
        assert (await c.get("/ui/models")).status_code == 200  # inside 30 min: and it is used now
        await _age(platform, idle, "last_seen_at", 29)
        assert (await c.get("/ui/models")).status_code == 200  # 29 min since the last request
        await _age(platform, idle, "last_seen_at", 31)
        r = await c.get("/ui/models")
        assert r.status_code == 302 and r.headers["location"].startswith("/ui/login")
        assert await _replay(console, idle) == 302
    async with console(OPERATOR) as c:
        old = _cookie(c)
        await _age(platform, old, "created_at", 7 * 60 + 59)
        assert (await c.get("/ui/models")).status_code == 200
        await _age(platform, old, "created_at", 2)  # 8 h 1 min after the login, though busy
        assert (await c.get("/ui/models")).status_code == 302
    async with console(OPERATOR, console_idle_s=60) as c:  # the limits are settings
        short = _cookie(c)
        await _age(platform, short, "last_seen_at", 2)
        assert (await c.get("/ui/models")).status_code == 302


async def test_revoking_a_key_ends_its_sessions_at_once(console, platform) -> None:
    async with console(None) as api:
        body = {"key_name": "sess-revoked", "role": "operator", "reason": "console session test"}
        r = await api.post("/keys", json=body, headers={"x-api-key": ADMIN})
        assert r.status_code == 201, r.text
        key = r.json()["key"]
    try:
        async with console(key) as c:
            value = _cookie(c)
            assert (await c.get("/ui/models")).status_code == 200  # the key is now cached too
            # Revoked as `just revoke-key` does, outside this API process and its key cache.
            meta = EventMetadata(actor="test")
            await platform.bus.handle(
                RevokeApiKey(key_name="sess-revoked", reason="stolen", metadata=meta)
            )
            assert (await c.get("/ui/models")).status_code == 302  # not after the cache's TTL
            assert await _replay(console, value) == 302
            async with platform.engine.connect() as conn:
                left = select(func.count()).where(console_sessions.c.key_name == "sess-revoked")
                assert await conn.scalar(left) == 0  # deleted in the revoking transaction
    finally:
        meta = EventMetadata(actor="test")
        await platform.bus.handle(
            RevokeApiKey(key_name="sess-revoked", reason="end", metadata=meta)
        )


async def test_the_cookie_is_host_prefixed_and_secure_unless_loopback_http(console) -> None:
    async with console(OPERATOR, console_secure_cookie="always") as c:
        assert c.cookies.get(PLAIN) is None  # Secure: httpx keeps it for https only
    async with console(None, console_secure_cookie="always") as c:
        r = await c.post("/ui/login", data={"key": OPERATOR})
        cookie = r.headers["set-cookie"].lower()
        assert cookie.startswith("__host-iep_console=") and "; secure" in cookie
        assert "path=/;" in cookie and "domain=" not in cookie and "httponly" in cookie
    async with console(None, base="https://testserver", console_secure_cookie="never") as c:
        r = await c.post("/ui/login", data={"key": OPERATOR})
        assert r.headers["set-cookie"].startswith(f"{PLAIN}=")
    # Bound to every address: __Host- and Secure, and the same id under the plain name (which
    # any page of the host, http included, could have set) opens nothing.
    async with console(OPERATOR, base="https://testserver", host=ELSEWHERE) as c:
        value = c.cookies.get(SECURE)
        assert value and (await c.get("/ui/models")).status_code == 200
        status = await _replay(console, value, PLAIN, "https://testserver", host=ELSEWHERE)
        assert status == 302


async def test_a_raised_role_in_a_bootstrap_keys_session_row_is_ignored(console, platform) -> None:
    # A key of API_KEYS has no api_keys row, so the database's guard cannot check the role a
    # session row claims for it: whoever can write the row must not make an operator an admin.
    async with console(OPERATOR) as c:
        q = (
            update(console_sessions)
            .where(console_sessions.c.session_hash == session_hash(_cookie(c)))
            .values(role="admin", key_name="admin-sess")
        )
        async with platform.engine.begin() as conn:
            assert (await conn.execute(q)).rowcount == 1
        page = await c.get("/ui/audit")
        assert page.status_code == 200, page.text
        token = CSRF.search(page.text)
        assert token, "the audit page has no form with a CSRF token"
        r = await c.post("/ui/audit/run", data={"csrf_token": token.group(1)})
        assert r.status_code == 403, r.text
        assert "operator" in r.text
