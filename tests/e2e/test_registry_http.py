"""The registry through HTTP, with the relay running in the app as in production."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from api.app import create_app
from bootstrap import create_engine, create_redis, wire
from events.streams import REGISTRY_STREAM
from tests.e2e.conftest import app_client

pytestmark = pytest.mark.anyio


async def _register(client, name: str, version: str, path) -> dict:
    r = await client.post(
        f"/models/{name}/versions", json={"model_version": version, "artifact_path": str(path)}
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_health_and_openapi(client) -> None:
    r = await client.get("/health")
    assert r.json() == {"status": "ok", "version": "0.1.0"}
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/models/{name}/versions/{version}/promote" in schema["paths"]
    # Every reason a request may carry documents the limits the API enforces.
    reasons = {
        name: component["properties"]["reason"]
        for name, component in schema["components"]["schemas"].items()
        if name.endswith("Request") and "reason" in component.get("properties", {})
    }
    assert len(reasons) >= 6, reasons
    for name, prop in reasons.items():
        assert prop["maxLength"] == 1000 and prop["pattern"] == r"^[^\x00]*$", (name, prop)


async def test_register_promote_rollback_history(client, model_name, state_dict_file) -> None:
    v1 = await _register(client, model_name, "v1", state_dict_file("a.pt", 1))
    assert v1["status"] == "staging" and v1["created"] is True
    again = await _register(client, model_name, "v1", state_dict_file("a.pt", 1))
    assert again["created"] is False
    await _register(client, model_name, "v2", state_dict_file("b.pt", 2))

    r = await client.post(f"/models/{model_name}/versions/v1/promote", json={"reason": "first"})
    assert r.status_code == 200 and r.json()["previous_prod"] is None
    r = await client.post(f"/models/{model_name}/versions/v2/promote")
    assert r.json()["previous_prod"] == "v1"
    r = await client.post(f"/models/{model_name}/rollback", json={"reason": "v2 regressed"})
    assert r.json() == {"model_name": model_name, "from_version": "v2", "to_version": "v1"}

    listed, cursor = [], None  # GET /models is paged (X-Next-Cursor): walk every page
    while True:
        r = await client.get("/models", params={"cursor": cursor} if cursor else {})
        listed += [m for m in r.json() if m["model_name"] == model_name]
        if not (cursor := r.headers.get("x-next-cursor")):
            break
    assert {m["model_version"]: m["status"] for m in listed} == {"v1": "prod", "v2": "staging"}
    assert set(listed[0]) == {
        *("model_name", "model_version", "status", "created_at"),
        *("reference_dataset", "accuracy"),  # the figure on it (docs/registry.md)
    }

    history = (await client.get(f"/models/{model_name}/history")).json()
    assert [h["event_type"] for h in history] == [
        "ModelVersionRegistered",
        "ModelVersionRegistered",
        "ModelVersionPromoted",
        "ModelVersionPromoted",
        "ModelVersionRolledBack",
    ]
    assert all(h["actor"] == "anonymous" and h["recorded_at"] for h in history)
    assert history[2]["reason"] == "first" and history[4]["reason"] == "v2 regressed"
    positions = [h["position"] for h in history]
    assert positions == sorted(positions)


async def test_errors_are_clear_4xx(client, model_name, state_dict_file, tmp_path) -> None:
    path = state_dict_file("a.pt", 1)
    await _register(client, model_name, "v1", path)
    cases = [
        (
            "post",
            f"/models/{model_name}/versions",
            {"model_version": "v1", "artifact_path": str(state_dict_file("c.pt", 3))},
            409,
            "immutable",
        ),
        (
            "post",
            f"/models/{model_name}/versions",
            {"model_version": "v2", "artifact_path": "/etc/passwd"},
            400,
            "outside the allowed roots",
        ),
        (
            "post",
            f"/models/{model_name}/versions",
            {"model_version": "v2", "artifact_path": str(tmp_path / "missing.pt")},
            400,
            "not found",
        ),
        (
            "post",
            f"/models/{model_name}/versions",
            {"model_version": "../../x", "artifact_path": str(path)},
            400,
            "invalid model version",
        ),
        (
            "post",
            f"/models/{model_name}/versions",
            {"artifact_path": str(path)},
            400,
            "model_version",
        ),
        (
            "post",
            "/models/BAD NAME/versions",
            {"model_version": "v1", "artifact_path": str(path)},
            400,
            "invalid model name",
        ),
        ("post", f"/models/{model_name}/versions/v9/promote", None, 404, "no version 'v9'"),
        ("post", "/models/never-registered/rollback", None, 404, "unknown model"),
        ("post", f"/models/{model_name}/rollback", None, 409, "no prod version"),
        ("get", "/models/never-registered/history", None, 404, "unknown model"),
        ("get", "/models/never-registered/versions", None, 404, "unknown model"),
    ]
    for method, url, body, status, message in cases:
        r = await getattr(client, method)(url, **({"json": body} if body is not None else {}))
        assert r.status_code == status, (url, body, r.text)
        assert message in r.json()["detail"] + str(r.json().get("errors", "")), r.text
    r = await client.post(
        f"/models/{model_name}/versions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    versions = (await client.get(f"/models/{model_name}/versions")).json()
    assert [v["model_version"] for v in versions] == ["v1"]


# torch's weights-only unpickler warns about the pickle's protocol on its way to refusing it.
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
async def test_non_state_dict_and_pickle_payloads_are_refused(client, model_name, tmp_path) -> None:
    import pickle

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(tmp_path / 'pwned')!r}, 'w').write('pwned')",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Evil()))
    (tmp_path / "text.pt").write_text("hello")
    for name in ("evil.pt", "text.pt"):
        r = await client.post(
            f"/models/{model_name}/versions",
            json={"model_version": "v1", "artifact_path": str(tmp_path / name)},
        )
        assert r.status_code == 400, r.text
    assert not (tmp_path / "pwned").exists()


async def test_body_over_the_limit_is_413(platform) -> None:
    small = replace(platform, settings=platform.settings.changed(api={"max_body_bytes": 1024}))
    async with app_client(create_app(small, run_relay=False)) as c:
        r = await c.post(
            "/models/x/versions", content=b"x" * 5000, headers={"content-type": "application/json"}
        )
        assert r.status_code == 413


async def test_database_down_is_503_without_a_trace(test_settings, tmp_path) -> None:
    engine = create_engine("postgresql+asyncpg://postgres@/postgres?host=/nonexistent-socket-dir")
    down = wire(
        test_settings.changed(files={"artifacts_dir": tmp_path}),
        engine,
        create_redis("redis://127.0.0.1:1"),
    )
    async with app_client(create_app(down, run_relay=False)) as c:
        r = await c.get("/models")
        assert r.status_code == 503
        assert r.headers["retry-after"]
        assert "postgresql is unavailable" in r.json()["detail"]
        assert "Traceback" not in r.text
    await down.aclose()


async def _positions_on_stream(redis, wanted: set[str], timeout: float = 10) -> set[str]:
    found: set[str] = set()
    for _ in range(int(timeout / 0.05)):
        entries = await redis.xrange(REGISTRY_STREAM, "-", "+")
        found = {eid.decode() for eid, _ in entries} & wanted
        if found == wanted:
            return found
        await asyncio.sleep(0.05)
    return found


async def test_flushall_loses_nothing(client, platform, model_name, state_dict_file) -> None:
    await _register(client, model_name, "v1", state_dict_file("a.pt", 1))
    await _register(client, model_name, "v2", state_dict_file("b.pt", 2))
    await client.post(f"/models/{model_name}/versions/v2/promote")
    history = (await client.get(f"/models/{model_name}/history")).json()
    wanted = {f"{h['position']}-0" for h in history}
    assert await _positions_on_stream(platform.redis, wanted) == wanted

    await platform.redis.flushall()
    assert await platform.redis.xlen(REGISTRY_STREAM) == 0
    assert await _positions_on_stream(platform.redis, wanted) == wanted
    entries = dict(await platform.redis.xrange(REGISTRY_STREAM, "-", "+"))
    first = entries[f"{history[0]['position']}-0".encode()]
    assert first[b"type"] == b"ModelVersionRegistered"
    assert first[b"event_id"].decode() == history[0]["event_id"]


async def test_every_change_is_logged_with_its_correlation_id(
    client, model_name, state_dict_file
) -> None:
    import uuid

    from structlog.testing import capture_logs

    from observability.logging import configure_logging

    correlation = str(uuid.uuid4())
    configure_logging("info")  # the suite runs at warning
    with capture_logs() as logs:
        r = await client.post(
            f"/models/{model_name}/versions",
            json={"model_version": "v1", "artifact_path": str(state_dict_file("a.pt", 1))},
            headers={"X-Correlation-ID": correlation},
        )
        assert r.status_code == 201
    configure_logging("warning")
    registered = [
        e
        for e in logs
        if e["event"] == "model_version_registered" and e.get("model_name") == model_name
    ]
    assert len(registered) == 1
    line = registered[0]
    assert (
        line["model_version"] == "v1"
        and line["correlation_id"] == correlation
        and line["log_level"] == "info"
    )
    history = (await client.get(f"/models/{model_name}/history")).json()
    assert history[0]["correlation_id"] == correlation
