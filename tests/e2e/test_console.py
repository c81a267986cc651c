"""The web console over HTTP (no browser): sessions, roles, CSRF, forms, pages and their paging.

The browser tests (tests/browser) drive the same pages in Chromium; these cover every refusal.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from api.app import create_app

pytestmark = pytest.mark.anyio
KEYS = {
    "reader": "reader-console-key-0123456789",
    "operator": "operator-console-key-0123456789",
    "admin": "admin-console-key-0123456789",
}
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


@pytest.fixture
async def console(platform, test_settings) -> AsyncIterator:
    """The app with one bootstrap key per role; ``console.session(role)`` logs a client in."""
    keys = {secret: (f"{role}-ann", role) for role, secret in KEYS.items()}
    app = create_app(
        platform, settings=test_settings.changed(security={"api_keys": keys, "rate_limit_per_s": 0})
    )
    async with app.lifespan():

        @asynccontextmanager
        async def session(role: str | None, base: str = "http://testserver"):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=base) as c:
                if role:
                    r = await c.post("/ui/login", data={"key": KEYS[role]})
                    assert r.status_code == 303, r.text
                yield c

        yield session


async def _model(c: httpx.AsyncClient, name: str, state_dict_file, *versions: str) -> None:
    """Register versions through the API and make the first one prod."""
    h = {"x-api-key": KEYS["operator"]}
    for i, v in enumerate(versions):
        body = {"model_version": v, "artifact_path": str(state_dict_file(f"{v}.pt", i))}
        assert (await c.post(f"/models/{name}/versions", json=body, headers=h)).status_code == 201
    r = await c.post(f"/models/{name}/versions/{versions[0]}/promote", json={}, headers=h)
    assert r.status_code == 200, r.text


async def _prod(c: httpx.AsyncClient, name: str) -> str | None:
    r = await c.get(f"/models/{name}", headers={"x-api-key": KEYS["reader"]})
    return r.json()["prod_version"]


def _csrf(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page carries no CSRF token"
    return match.group(1)


async def test_login_sets_a_strict_httponly_cookie_and_refuses_bad_keys(console) -> None:
    async with console(None) as c:
        r = await c.get("/ui/models")
        assert r.status_code == 302 and r.headers["location"].startswith("/ui/login?next=")
        r = await c.post("/ui/login", data={"key": "not-a-key-at-all-000000"})
        assert r.status_code == 401 and "no active key" in r.text and "iep_console" not in c.cookies
        r = await c.post("/ui/login", data={"key": KEYS["reader"], "next": "https://evil.example/"})
        assert r.status_code == 303 and r.headers["location"] == "/ui/models"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
        # HOST is loopback and this is plain http: no __Host- prefix, no Secure (below: https).
        assert cookie.startswith("iep_console=") and "secure" not in cookie
        r = await c.get("/ui/models")
        assert r.status_code == 200 and "reader-ann" in r.text
        assert "default-src 'self'" in r.headers["content-security-policy"]
        r = await c.post("/ui/logout", data={"csrf_token": _csrf(r.text)})
        assert r.status_code == 303 and (await c.get("/ui/models")).status_code == 302
    async with console(None, base="https://testserver") as c:
        r = await c.post("/ui/login", data={"key": KEYS["reader"]})
        cookie = r.headers["set-cookie"].lower()
        assert cookie.startswith("__host-iep_console=") and "secure" in cookie
        assert "path=/;" in cookie and "domain" not in cookie


async def test_a_reader_sees_no_action_and_cannot_take_one(
    console, model_name, state_dict_file
) -> None:
    async with console("operator") as op, console("reader") as rd:
        await _model(op, model_name, state_dict_file, "v1", "v2")
        page = await rd.get(f"/ui/models/{model_name}")
        assert page.status_code == 200 and "v2" in page.text
        assert "Promote…" not in page.text and "Roll back…" not in page.text
        assert (await rd.get(f"/ui/models/{model_name}/versions/v2/promote")).status_code == 403
        form = {"reason": "sneaky", "confirm": "yes"}
        url = f"/ui/models/{model_name}/versions/v2/promote"
        # The reader's own token is valid, but the role is not.
        r = await rd.post(url, data={**form, "csrf_token": _csrf(page.text)})
        assert r.status_code == 403 and "needs &#39;operator&#39;" in r.text
        op_page = (await op.get(f"/ui/models/{model_name}")).text
        assert "Promote…" in op_page and "Roll back…" in op_page
        # The operator's session refuses a form without a token, with the reader's token, with
        # a token from another operator session, and one posted from another site.
        async with console("operator") as other:
            stolen = _csrf((await other.get("/ui/models")).text)
        for data, headers in (
            (form, {}),
            ({**form, "csrf_token": _csrf(page.text)}, {}),
            ({**form, "csrf_token": stolen}, {}),
            ({**form, "csrf_token": "0" * 64}, {}),
            ({**form, "csrf_token": _csrf(op_page)}, {"origin": "https://evil.example"}),
        ):
            r = await op.post(url, data=data, headers=headers)
            assert r.status_code == 403, (data, headers, r.text)
        # A rollback and the audit run are refused the same way.
        r = await op.post(f"/ui/models/{model_name}/rollback", data={**form, "csrf_token": stolen})
        assert r.status_code == 403
        assert await _prod(op, model_name) == "v1"
        r = await op.post(url, data={**form, "csrf_token": _csrf(op_page)})
        assert r.status_code == 303 and await _prod(op, model_name) == "v2"


async def test_promote_and_rollback_ask_for_a_reason_and_record_the_actor(
    console, model_name, state_dict_file
) -> None:
    async with console("operator") as op:
        await _model(op, model_name, state_dict_file, "v1", "v2")
        token = _csrf((await op.get(f"/ui/models/{model_name}")).text)
        url = f"/ui/models/{model_name}/versions/v2/promote"
        for data in ({"reason": "x"}, {"confirm": "yes"}, {"reason": "  ", "confirm": "yes"}):
            r = await op.post(url, data={**data, "csrf_token": token})
            assert r.status_code == 400 and "reason" in r.text, data
        r = await op.post(url, data={"reason": "x" * 2000, "confirm": "yes", "csrf_token": token})
        assert r.status_code == 400 and "limit" in r.text
        r = await op.post(url, data={"reason": "better F1", "confirm": "yes", "csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == f"/ui/models/{model_name}"
        page = (await op.get(f"/ui/models/{model_name}")).text
        first = page.split('<li class="event')[1]
        assert "promoted v2 to prod, demoted v1" in first and "better F1" in first
        assert "operator-ann" in first and "/ui/traces/" in first
        rollback = f"/ui/models/{model_name}/rollback"
        assert (await op.get(rollback)).status_code == 200
        r = await op.post(
            rollback, data={"reason": "bad canary", "confirm": "yes", "csrf_token": token}
        )
        assert r.status_code == 303 and await _prod(op, model_name) == "v1"
        # Past the first prod there is nothing to roll back to: 409 on the form, not a 500.
        r = await op.post(rollback, data={"reason": "again", "confirm": "yes", "csrf_token": token})
        assert r.status_code == 409 and 'role="alert"' in r.text


async def test_a_forced_promotion_shows_as_an_override(
    console, model_name, state_dict_file
) -> None:
    async with console("admin") as ad:
        await _model(ad, model_name, state_dict_file, "v1", "v2")
        r = await ad.put(
            f"/models/{model_name}/gate-policy",
            json={"require_gate": True},
            headers={"x-api-key": KEYS["admin"]},
        )
        assert r.status_code == 200, r.text
        token = _csrf((await ad.get(f"/ui/models/{model_name}")).text)
        url = f"/ui/models/{model_name}/versions/v2/promote"
        r = await ad.post(url, data={"reason": "hotfix", "confirm": "yes", "csrf_token": token})
        assert r.status_code == 409 and "gate" in r.text and await _prod(ad, model_name) == "v1"
        r = await ad.post(
            url,
            data={
                "reason": "hotfix, gate later",
                "confirm": "yes",
                "force": "yes",
                "csrf_token": token,
            },
        )
        assert r.status_code == 303 and await _prod(ad, model_name) == "v2"
        first = (await ad.get(f"/ui/models/{model_name}")).text.split('<li class="event')[1]
        assert "tone-warning" in first and "Override" in first and "FORCED" in first


async def test_lists_page_and_search_and_bad_input_gets_a_4xx_page(
    console, model_name, state_dict_file
) -> None:
    async with console("reader") as rd, console("operator") as op:
        versions = [f"v{i}" for i in range(1, 29)]
        await _model(op, model_name, state_dict_file, *versions)
        page = (await rd.get(f"/ui/models/{model_name}")).text
        row = '<th scope="row">{}</th>'.format
        assert row("v28") in page and row("v1") not in page  # newest first, 25 a page
        older = re.search(r'href="(/ui/models/[^"]+\?vc=[^"]+)">Older versions', page)
        assert older, "no link to the older versions"
        page2 = (await rd.get(older.group(1).replace("&amp;", "&"))).text
        assert row("v1") in page2 and row("v28") not in page2
        assert "Older events" in page  # 29 events: registered 28 times, promoted once
        found = await rd.get("/ui/models", params={"q": model_name[2:]})
        assert found.status_code == 200 and model_name in found.text
        assert f'/ui/models/{model_name}"' not in (await rd.get("/ui/models?q=zz-none")).text
        for url, status in (
            ("/ui/models?q=%25", 400),
            ("/ui/models?cursor=%21%21", 400),
            ("/ui/models?cursor=bm9wZQ", 400),
            ("/ui/models/ghost", 404),
            ("/ui/models/Bad!Name", 400),
            (f"/ui/models/{model_name}?at=yesterday", 400),
            (f"/ui/models/{model_name}?at=1999-01-01", 400),
            ("/ui/jobs/ghost", 404),
            ("/ui/gates/ghost", 404),
            ("/ui/traces/xyz", 400),
            (f"/ui/models/{model_name}?tc=bm9wZQ", 400),
        ):
            r = await rd.get(url)
            assert r.status_code == status and 'role="alert"' in r.text, (url, r.text[-500:])
        at = await rd.get(f"/ui/models/{model_name}", params={"at": "2999-01-01T00:00:00Z"})
        assert at.status_code == 200 and "prod was <strong>v1</strong>" in at.text


async def test_the_trace_link_shows_the_events_of_that_trace(
    console, model_name, state_dict_file
) -> None:
    async with console("operator") as op:
        h = {"x-api-key": KEYS["operator"], "traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"}
        body = {"model_version": "v1", "artifact_path": str(state_dict_file("v1.pt"))}
        r = await op.post(f"/models/{model_name}/versions", json=body, headers=h)
        assert r.status_code == 201, r.text
        page = (await op.get(f"/ui/models/{model_name}")).text
        link = re.search(r'href="(/ui/traces/[0-9a-f]{32})"', page)
        assert link, "the timeline links no trace"
        trace = await op.get(link.group(1))
        assert trace.status_code == 200 and "registered v1" in trace.text


async def test_the_audit_page_shows_the_latest_run_and_only_admins_run_it(console) -> None:
    async with console("reader") as rd, console("admin") as ad:
        page = await rd.get("/ui/audit")
        assert page.status_code == 200 and "Run the audit now" not in page.text
        r = await rd.post("/ui/audit/run", data={"csrf_token": _csrf(page.text)})
        assert r.status_code == 403
        admin_page = (await ad.get("/ui/audit")).text
        assert "Run the audit now" in admin_page
        r = await ad.post("/ui/audit/run", data={"csrf_token": _csrf(admin_page)})
        assert r.status_code == 303
        shown = (await rd.get("/ui/audit")).text
        assert "admin-ann (console)" in shown and "events up to position" in shown
