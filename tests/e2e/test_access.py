"""Access over HTTP: 401 and 403 per role, the key name as actor, revocation, rate limits."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from api.anonymous import StartRefused
from api.app import create_app
from domain.errors import NotFound
from domain.keys.commands import RevokeApiKey
from events.base import EventMetadata
from events.keys import ROLES
from tests.e2e.conftest import app_client

pytestmark = pytest.mark.anyio
KEYS = {role: f"{role}-secret-{'x' * 16}" for role in ROLES}


def as_role(role: str) -> dict[str, str]:
    """The header of the bootstrap key with ``role``."""
    return {"x-api-key": KEYS[role]}


@pytest.fixture
def keyed_settings(test_settings):
    """One bootstrap key per role (named '<role>-key'), no rate limit."""
    keys = {secret: (f"{role}-key", role) for role, secret in KEYS.items()}
    return test_settings.changed(security={"api_keys": keys, "rate_limit_per_s": 0})


@pytest.fixture
async def keyed(platform, keyed_settings):
    """The API with bootstrap keys."""
    async with app_client(create_app(platform, keyed_settings)) as c:
        yield c


@pytest.fixture
async def stored_keys(platform):
    """Names of keys a test creates in the database, revoked when it ends.

    Other tests run with no key defined (anonymous on loopback), so none may stay active.
    """
    created: list[str] = []
    yield created
    for name in created:
        with contextlib.suppress(NotFound):
            await platform.bus.handle(
                RevokeApiKey(
                    key_name=name,
                    reason="test ended",
                    force=True,  # even an admin key that is the last one
                    metadata=EventMetadata(actor="tests"),
                )
            )


def _register_body(trained_artifacts, version: str = "v1") -> dict:
    return {"model_version": version, "artifact_path": str(trained_artifacts["v1"])}


async def test_each_role_reaches_exactly_its_endpoints(
    keyed, model_name, trained_artifacts
) -> None:
    predict = {"model_name": model_name, "image_b64": "AAAA"}
    infer = {
        "inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [0.0] * 784}]
    }
    register = ("post", f"/models/{model_name}/versions", _register_body(trained_artifacts))
    calls = {
        "reader": ("get", "/models", None),
        "predictor": ("post", "/predict", predict),
        "predictor-v2": ("post", f"/v2/models/{model_name}/infer", infer),
        "operator": register,
        "admin": ("get", "/keys", None),
    }

    async def call(what: str, headers: dict[str, str]):
        method, url, body = calls[what]
        return await getattr(keyed, method)(
            url, headers=headers, **({"json": body} if body else {})
        )

    for what in calls:  # no key, a wrong key: 401 before anything runs
        assert (await call(what, {})).status_code == 401, what
        r = await call(what, {"x-api-key": "wrong-" + "y" * 30})
        assert r.status_code == 401 and "no active key" in r.json()["detail"], r.text
    allowed = {
        "reader": {"reader"},
        "predictor": {"reader", "predictor", "predictor-v2"},
        "operator": {"reader", "predictor", "predictor-v2", "operator"},
        "admin": set(calls),
    }
    for role in ROLES:
        for what in calls:
            r = await call(what, as_role(role))
            if what in allowed[role]:
                # Past the guard: the handler answers (an unknown model, a PNG that is not one).
                assert r.status_code not in (401, 403) and r.status_code < 500, (role, what, r.text)
            else:
                assert r.status_code == 403, (role, what, r.text)
                assert f"has role {role!r}" in r.json()["detail"]
    for url in ("/health", "/v2/health/live", "/v2", "/schema/openapi.json"):
        assert (await keyed.get(url)).status_code == 200, url  # public, no key


async def test_the_key_name_is_the_actor_of_every_event_it_causes(
    keyed, model_name, trained_artifacts
) -> None:
    r = await keyed.post(
        f"/models/{model_name}/versions",
        json=_register_body(trained_artifacts),
        headers=as_role("operator"),
    )
    assert r.status_code == 201, r.text
    r = await keyed.post(f"/models/{model_name}/versions/v1/promote", headers=as_role("admin"))
    assert r.status_code == 200, r.text
    history = (await keyed.get(f"/models/{model_name}/history", headers=as_role("reader"))).json()
    assert [(h["event_type"], h["actor"]) for h in history] == [
        ("ModelVersionRegistered", "operator-key"),
        ("ModelVersionPromoted", "admin-key"),
    ]


async def test_a_created_key_works_until_revoked_in_every_process(
    platform, keyed_settings, stored_keys
) -> None:
    name = f"k-{uuid.uuid4().hex[:10]}"
    stored_keys.append(name)
    other_process = keyed_settings.changed(security={"key_cache_ttl_s": 0.2})
    async with (
        app_client(create_app(platform, keyed_settings)) as a,
        app_client(create_app(platform, other_process, run_relay=False)) as b,
    ):
        r = await a.post(
            "/keys", json={"key_name": name, "role": "reader"}, headers=as_role("admin")
        )
        assert r.status_code == 201, r.text
        key = {"x-api-key": r.json()["key"]}
        assert r.json()["role"] == "reader" and r.json()["key"].startswith("iep_")
        again = await a.post(
            "/keys", json={"key_name": name, "role": "admin"}, headers=as_role("admin")
        )
        assert again.status_code == 409, again.text
        assert (await a.get("/models", headers=key)).status_code == 200
        assert (await b.get("/models", headers=key)).status_code == 200  # now cached in b
        assert (
            await a.post("/keys", json={"key_name": "x", "role": "reader"}, headers=key)
        ).status_code == 403
        r = await a.delete(f"/keys/{name}", headers=as_role("admin"))
        assert r.status_code == 200 and r.json()["active"] is False, r.text
        assert (await a.get("/models", headers=key)).status_code == 401  # at once where revoked
        deadline = asyncio.get_running_loop().time() + 10
        while (status := (await b.get("/models", headers=key)).status_code) == 200:
            assert asyncio.get_running_loop().time() < deadline, "b still takes the revoked key"
            await asyncio.sleep(0.05)
        assert status == 401  # elsewhere within KEY_CACHE_TTL_S
        assert (await a.delete(f"/keys/{name}", headers=as_role("admin"))).status_code == 200
        assert (await a.delete("/keys/never-made", headers=as_role("admin"))).status_code == 404
    async with platform.uow() as tx:
        state = await tx.keys.load(name)
    assert (state.created_by, state.revoked_by, state.active) == ("admin-key", "admin-key", False)
    assert state.stream_version == 2  # the repeated revoke recorded nothing


async def test_keys_are_listed_a_page_at_a_time_without_secrets(keyed, stored_keys) -> None:
    names = sorted(f"k-{uuid.uuid4().hex[:10]}" for _ in range(3))
    stored_keys.extend(names)
    for name in names:
        r = await keyed.post(
            "/keys", json={"key_name": name, "role": "predictor"}, headers=as_role("admin")
        )
        assert r.status_code == 201, r.text
    seen, cursor = [], None
    while True:
        r = await keyed.get(
            "/keys",
            params={"limit": 2, **({"cursor": cursor} if cursor else {})},
            headers=as_role("admin"),
        )
        assert r.status_code == 200 and len(r.json()) <= 2, r.text
        seen += r.json()
        cursor = r.headers.get("x-next-cursor")
        if cursor is None:
            break
    mine = [k for k in seen if k["key_name"] in names]
    assert [k["key_name"] for k in mine] == names and all(
        k["created_by"] == "admin-key" for k in mine
    )
    assert not any("key" in k or "key_hash" in k for k in seen)
    assert [k["key_name"] for k in seen] == sorted(k["key_name"] for k in seen)


async def test_a_key_over_its_rate_gets_429_with_retry_after(platform, keyed_settings) -> None:
    # One token per 100 s after a burst of 2: the third request is over, whatever the machine's speed.
    # The buckets live in Redis, shared by every process and test run: names and address are new.
    run = uuid.uuid4().hex[:8]
    keys = {secret: (f"{role}-{run}", role) for role, secret in KEYS.items()}
    limited = keyed_settings.changed(
        security={"api_keys": keys, "rate_limit_per_s": 0.01, "rate_limit_burst": 2}
    )
    peer = f"127.{int(run[:2], 16)}.{int(run[2:4], 16)}.{int(run[4:6], 16)}"
    async with app_client(create_app(platform, limited, run_relay=False), peer) as c:
        codes = [(await c.get("/models", headers=as_role("reader"))) for _ in range(3)]
        assert [r.status_code for r in codes] == [200, 200, 429]
        assert (
            int(codes[2].headers["retry-after"]) >= 1 and "rate limit" in codes[2].json()["detail"]
        )
        assert (
            await c.get("/models", headers=as_role("admin"))
        ).status_code == 200  # its own bucket
        bad = [
            (await c.get("/models", headers={"x-api-key": "guess-" + "z" * 20})).status_code
            for _ in range(3)
        ]
        assert bad == [401, 401, 429]  # guessing is limited too
        assert (await c.get("/health")).status_code == 200  # public routes are not limited


async def test_open_reads_and_anonymous_use(platform, keyed_settings, test_settings) -> None:
    async with app_client(
        create_app(platform, keyed_settings.changed(security={"open_reads": True}), run_relay=False)
    ) as c:
        assert (await c.get("/models")).status_code == 200
        assert (
            await c.post("/predict", json={"model_name": "m", "image_b64": "AAAA"})
        ).status_code == 401
        assert (await c.post("/models/m/rollback")).status_code == 401
    # No key at all: an app listening beyond loopback does not start (tests/e2e/
    # test_access_exploits.py has the rest), unless ALLOW_ANONYMOUS=1.
    exposed = test_settings.changed(security={"api_keys": {}}, api={"host": "192.0.2.1"})
    with pytest.raises(BaseExceptionGroup) as refused:  # Litestar's lifespan wraps it
        async with app_client(create_app(platform, exposed, run_relay=False)):
            pass
    assert refused.group_contains(StartRefused, match="create-key")
    async with app_client(
        create_app(platform, exposed.changed(security={"allow_anonymous": True}), run_relay=False)
    ) as c:
        assert (await c.get("/models")).status_code == 200
    async with app_client(
        create_app(platform, exposed.changed(api={"host": "127.0.0.1"}), run_relay=False)
    ) as c:
        assert (await c.get("/keys")).status_code == 200  # anonymous on loopback may do everything
