"""The console's page of promotion requests (four eyes): a request by one key, approved by another
with the page's Approve form (CSRF as every form); the requester's own approval is refused."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from api.app import create_app

pytestmark = pytest.mark.anyio
KEYS = {"operator": "operator-eyes-key-0123456789", "admin": "admin-eyes-key-0123456789ab"}
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
PAGE = "/ui/promotion-requests"


@pytest.fixture
async def console(platform, test_settings) -> AsyncIterator:
    """The app with an operator (op) and an admin (boss); ``console(role)`` logs a client in."""
    names = {"operator": "op", "admin": "boss"}
    keys = {secret: (names[role], role) for role, secret in KEYS.items()}
    settings = test_settings.changed(security={"api_keys": keys, "rate_limit_per_s": 0})
    app = create_app(platform, settings=settings)
    async with app.lifespan():

        @asynccontextmanager
        async def session(role: str):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                r = await c.post("/ui/login", data={"key": KEYS[role]})
                assert r.status_code == 303, r.text
                yield c

        yield session


def _csrf(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page carries no CSRF token"
    return match.group(1)


async def _prod(c: httpx.AsyncClient, name: str) -> str:
    r = await c.get(f"/models/{name}/versions", headers={"x-api-key": KEYS["operator"]})
    return next(v["model_version"] for v in r.json() if v["status"] == "prod")


async def test_a_request_waits_on_the_page_until_another_key_approves_it(
    console, model_name, state_dict_file
) -> None:
    admin = {"x-api-key": KEYS["admin"]}
    async with console("operator") as op, console("admin") as boss:
        for i, v in enumerate(("v1", "v2")):
            body = {"model_version": v, "artifact_path": str(state_dict_file(f"{v}.pt", i))}
            r = await op.post(f"/models/{model_name}/versions", json=body, headers=admin)
            assert r.status_code == 201, r.text
        r = await op.post(f"/models/{model_name}/versions/v1/promote", headers=admin)
        assert r.status_code == 200, r.text
        policy = {"approvals_required": 2}
        r = await op.put(f"/models/{model_name}/gate-policy", json=policy, headers=admin)
        assert r.status_code == 200, r.text

        token = _csrf((await op.get(f"/ui/models/{model_name}")).text)
        form = {"reason": "better F1", "confirm": "yes", "csrf_token": token}
        r = await op.post(f"/ui/models/{model_name}/versions/v2/promote", data=form)
        assert r.status_code == 303, r.text
        assert await _prod(op, model_name) == "v1"  # a request, not a promotion

        mine = await op.get(PAGE)
        assert mine.status_code == 200 and model_name in mine.text
        assert "your request: another key approves it" in mine.text
        approve = f"/ui/models/{model_name}/versions/v2/approve"
        r = await op.post(approve, data={"reason": "mine", "csrf_token": _csrf(mine.text)})
        assert r.status_code == 403 and "another key must approve it" in r.text

        theirs = await boss.get(PAGE)
        assert f'action="{approve}"' in theirs.text
        r = await boss.post(approve, data={"reason": "checked", "csrf_token": _csrf(mine.text)})
        assert r.status_code == 403  # the operator's token is not the admin's session's
        assert await _prod(op, model_name) == "v1"
        r = await boss.post(approve, data={"reason": "checked", "csrf_token": _csrf(theirs.text)})
        assert r.status_code == 303 and r.headers["location"] == PAGE
        assert await _prod(op, model_name) == "v2"
        after = await boss.get(PAGE)
        assert model_name not in after.text

        r = await op.get(f"/models/{model_name}/history", headers=admin)
        last = r.json()[-1]
        assert last["event_type"] == "ModelVersionPromoted" and last["actor"] == "boss"
        assert "requested by op, approved by boss" in last["summary"]
