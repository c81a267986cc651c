"""Traffic through HTTP: request ids, capture policies, captured requests stored by the
traffic-recorder handler, feedback (unknown ids, out-of-range labels, duplicates, relabels)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from api.app import create_app
from consumers import traffic_recorder
from consumers.context import WorkerContext
from events.traffic import CAPTURED_STREAM
from ml.datasets import load_dataset
from storage import event_store
from tests.conftest import ROOT
from tests.e2e.conftest import app_client
from tests.e2e.test_inference_http import _register, png_b64

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    d = load_dataset("fashion_mnist_64", cache_dir=ROOT / ".platform" / "cache")
    return d.images.numpy(), d.labels.numpy()


async def _served(client, name: str, image: np.ndarray, request_id: str | None = None):
    headers = {"X-Request-Id": request_id} if request_id is not None else {}
    r = await client.post(
        "/predict", json={"model_name": name, "image_b64": png_b64(image)}, headers=headers
    )
    assert r.status_code == 200, r.text
    return r


async def _record(platform, after: str) -> str:
    """Run the traffic-recorder's handler over the entries written since ``after``."""
    ctx = WorkerContext(bus=platform.bus)
    last = after
    for _ in range(50):  # the capture writer runs in the app's background: wait for it
        entries = await platform.redis.xrange(CAPTURED_STREAM, f"({last}", "+")
        for entry_id, fields in entries:
            last = entry_id.decode()
            await traffic_recorder.handle(ctx, CAPTURED_STREAM, last, fields)
        if entries:
            await asyncio.sleep(0.3)  # a second batch may follow
            continue
        if last != after:
            return last
        await asyncio.sleep(0.1)
    return last


async def _stream_end(platform) -> str:
    tail = await platform.redis.xrevrange(CAPTURED_STREAM, count=1)
    return tail[0][0].decode() if tail else "0-0"


async def test_request_ids_valid_kept_invalid_replaced(
    client, model_name, trained_artifacts, images
):
    await _register(client, model_name, "v1", trained_artifacts["v1"], promote=True)
    r = await _served(client, model_name, images[0][0], "client-42:a.b_c")
    assert r.json()["request_id"] == r.headers["x-request-id"] == "client-42:a.b_c"
    for bad in ("has space", "x" * 65, "semi;colon"):
        r = await _served(client, model_name, images[0][0], bad)
        rid = r.json()["request_id"]
        assert rid != bad and len(rid) == 32 and r.headers["x-request-id"] == rid
    r = await _served(client, model_name, images[0][0])
    assert len(r.json()["request_id"]) == 32
    body = {
        "inputs": [
            {
                "name": "input",
                "shape": [1, 28, 28],
                "datatype": "UINT8",
                "data": images[0][0].ravel().tolist(),
            }
        ]
    }
    r = await client.post(
        f"/v2/models/{model_name}/infer", json=body, headers={"X-Request-Id": "v2-req"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["request_id"] == r.headers["x-request-id"] == "v2-req"


async def test_capture_policy_endpoint_validates_and_records(
    client, platform, model_name, trained_artifacts
):
    r = await client.get(f"/models/{model_name}/capture-policy")
    assert r.status_code == 404
    await _register(client, model_name, "v1", trained_artifacts["v1"], promote=True)
    r = await client.get(f"/models/{model_name}/capture-policy")
    assert r.json() == {
        "model_name": model_name,
        "fraction": 0.0,
        "max_per_s": 0.0,
        "retention_days": 30,
        "changed": None,
    }
    for bad, word in (
        ({"fraction": 1.5, "max_per_s": 10}, "fraction"),
        ({"fraction": 0.5, "max_per_s": 0}, "max_per_s"),
        ({"fraction": 0.5, "max_per_s": 5, "retention_days": 0}, "retention_days"),
    ):
        r = await client.put(f"/models/{model_name}/capture-policy", json=bad)
        assert r.status_code == 400 and word in r.text, r.text
    policy = {"fraction": 0.25, "max_per_s": 50, "retention_days": 7}
    r = await client.put(f"/models/{model_name}/capture-policy", json=policy)
    assert r.status_code == 200 and r.json()["changed"] is True, r.text
    r = await client.put(f"/models/{model_name}/capture-policy", json=policy)
    assert r.json()["changed"] is False
    r = await client.get(f"/models/{model_name}/capture-policy")
    assert (r.json()["fraction"], r.json()["retention_days"]) == (0.25, 7)
    async with platform.engine.connect() as conn:
        history = await event_store.load_stream(conn, f"capture-{model_name}")
    assert [type(h.event).__name__ for h in history] == ["CapturePolicySet"]


async def test_captured_requests_and_feedback(platform, model_name, trained_artifacts, images):
    app = create_app(platform)
    async with app_client(app) as client:
        await _capture_and_label(app, client, platform, model_name, trained_artifacts, images)


async def _capture_and_label(app, client, platform, model_name, trained_artifacts, images):
    imgs, labels = images
    await _register(client, model_name, "v1", trained_artifacts["v1"], promote=True)
    start = await _stream_end(platform)
    await _served(client, model_name, imgs[0], "before-policy")  # no policy: not captured
    r = await client.put(
        f"/models/{model_name}/capture-policy", json={"fraction": 1.0, "max_per_s": 1000}
    )
    assert r.status_code == 200
    await app.state.online.capture.refresh_once()  # no wait for the next refresh
    ids = [f"{model_name}-{i}" for i in range(6)]
    answers = [await _served(client, model_name, imgs[i], rid) for i, rid in enumerate(ids)]
    await _record(platform, start)
    async with platform.engine.connect() as conn:
        from sqlalchemy import select

        from storage.tables import captured_requests as t

        rows = (await conn.execute(select(t).where(t.c.model_name == model_name))).all()
    stored = {r.request_id: r for r in rows}
    assert set(stored) == set(ids)
    first = stored[ids[0]]
    assert first.prediction == answers[0].json()["prediction"] and len(first.scores) == 10
    assert np.array_equal(np.frombuffer(first.input, np.uint8).reshape(28, 28), imgs[0])

    # Feedback: one, a list, then every kind of refusal (all or none).
    r = await client.post("/feedback", json={"request_id": ids[0], "label": int(labels[0])})
    assert r.status_code == 200 and r.json() == {"received": 1, "labelled": 1}, r.text
    batch = [{"request_id": rid, "label": int(labels[i])} for i, rid in enumerate(ids)][1:4]
    r = await client.post("/feedback", json=batch)
    assert r.json() == {"received": 3, "labelled": 3}, r.text
    r = await client.post("/feedback", json={"request_id": ids[0], "label": int(labels[0])})
    assert r.json() == {"received": 1, "labelled": 0}  # the same label again: nothing new
    r = await client.post(
        "/feedback", json={"request_id": ids[0], "label": (int(labels[0]) + 1) % 10}
    )
    assert r.status_code == 409 and ids[0] in r.text, r.text
    r = await client.post(
        "/feedback",
        json=[
            {"request_id": ids[4], "label": 1},
            {"request_id": "nobody-1", "label": 1},
            {"request_id": "before-policy", "label": 1},
        ],
    )
    assert r.status_code == 404 and "nobody-1" in r.text and "before-policy" in r.text, r.text
    r = await client.post("/feedback", json=[{"request_id": ids[4], "label": 10}])
    assert r.status_code == 400 and ids[4] in r.text and "0..9" in r.text, r.text
    r = await client.post("/feedback", json=[{"request_id": ids[4], "label": -1}])
    assert r.status_code == 400, r.text
    r = await client.post(
        "/feedback", json=[{"request_id": ids[4], "label": 2}, {"request_id": ids[4], "label": 2}]
    )
    assert r.status_code == 400 and "more than once" in r.text and ids[4] in r.text, r.text
    for bad in ([], {"request_id": "a b", "label": 1}, {"request_id": ids[4], "label": "cat"}):
        r = await client.post("/feedback", json=bad)
        assert r.status_code == 400, (bad, r.text)
    labelled = await platform.traffic_ports.captured.labels_for(ids)
    assert labelled == {rid: int(labels[i]) for i, rid in enumerate(ids[:4])}
