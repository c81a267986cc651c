"""Shadow and canary through a real API app (its background mirror, router and writer), the
shadow-evaluation handler and evaluator on real PostgreSQL and Redis, real trained models."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from api.online_mirror import OnlineFollower
from consumers import shadow_evaluation
from consumers.context import WorkerContext
from domain.online.commands import AbortCanary, StartCanary, StartShadow
from events.base import EventMetadata
from events.online import OUTCOMES_STREAM
from ml.datasets import load_dataset
from tests.conftest import ROOT
from tests.e2e.test_inference_http import _register, png_b64

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="tester")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    d = load_dataset("fashion_mnist_64", cache_dir=ROOT / ".platform" / "cache")
    return d.images.numpy()


def _follower(client) -> OnlineFollower:
    online = client._transport.app.state.online  # the in-process app behind the client
    return next(s for s in online.subscribers if isinstance(s, OnlineFollower))


async def _predict(client, name, image, key: str | None = None):
    headers = {"X-Routing-Key": key} if key else {}
    r = await client.post(
        "/predict", json={"model_name": name, "image_b64": png_b64(image)}, headers=headers
    )
    assert r.status_code == 200, r.text
    return r.json()


async def _until(check, what: str, seconds: float = 5.0):
    for _ in range(int(seconds / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_shadow_mirrors_pairs_and_judges(
    client, platform, model_name, trained_artifacts, images
):
    await _register(client, model_name, "v1", trained_artifacts["v1"], promote=True)
    await _register(client, model_name, "v2", trained_artifacts["v2"])
    await platform.bus.handle(
        StartShadow(model_name=model_name, version="v2", fraction=1.0, metadata=META)
    )
    follower = _follower(client)

    async def following():
        return model_name in follower.shadows

    await _until(following, "the API process to follow the shadow")
    for image in images[:20]:
        assert (await _predict(client, model_name, image))["model_version"] == "v1"
    ctx = WorkerContext(bus=platform.bus)

    async def stored():
        for entry_id, fields in await platform.redis.xrange(OUTCOMES_STREAM):
            await shadow_evaluation.handle(ctx, OUTCOMES_STREAM, entry_id.decode(), fields)
        shadow = (await platform.online_ports.log.load(model_name)).shadow
        counts = await platform.online_ports.outcomes.counts(shadow.shadow_id, 0.2)
        return counts.outcomes + follower.dropped >= 20

    await _until(stored, "20 paired outcomes (or drops)", 15)
    await shadow_evaluation.evaluate_once(ctx, platform.online_ports.log)
    body = (await client.get(f"/models/{model_name}/shadow")).json()
    figures = body["shadow"]["figures"]
    assert body["shadow"]["verdict"] == "INCONCLUSIVE"  # no feedback yet
    assert figures["outcomes"] >= 1 and 0.5 <= figures["agreement"] <= 1.0


async def test_canary_routes_by_key_and_an_abort_stops_it(
    client, platform, model_name, trained_artifacts, images
):
    await _register(client, model_name, "v1", trained_artifacts["v1"], promote=True)
    await _register(client, model_name, "v2", trained_artifacts["v2"])
    start = StartCanary(model_name=model_name, version="v2", steps=[50, 100], metadata=META)
    await platform.bus.handle(start)
    follower = _follower(client)

    async def following():
        return model_name in follower.canaries

    await _until(following, "the API process to follow the canary")
    served = {
        k: (await _predict(client, model_name, images[0], k))["model_version"]
        for k in (f"user-{i}" for i in range(40))
    }
    assert set(served.values()) == {"v1", "v2"}  # about half each, by key
    again = {k: (await _predict(client, model_name, images[0], k))["model_version"] for k in served}
    assert again == served  # a key always lands on the same side
    await platform.bus.handle(AbortCanary(model_name=model_name, metadata=META))

    async def stopped():
        return model_name not in follower.canaries

    await _until(stopped, "the abort to reach the API process", 2.0)
    after = {(await _predict(client, model_name, images[0], k))["model_version"] for k in served}
    assert after == {"v1"}  # prod never changed


async def test_a_full_mirror_queue_drops_and_never_fails_prod(
    client, platform, model_name, trained_artifacts, images
):
    await _register(client, model_name, "v1", trained_artifacts["v1"], promote=True)
    await _register(client, model_name, "v2", trained_artifacts["v2"])
    follower = _follower(client)
    follower.queue = asyncio.Queue(1)  # one waiting request at most
    await platform.bus.handle(
        StartShadow(model_name=model_name, version="v2", fraction=1.0, metadata=META)
    )

    async def following():
        return model_name in follower.shadows

    await _until(following, "the API process to follow the shadow")
    before = follower.dropped
    answers = await asyncio.gather(*(_predict(client, model_name, im) for im in images[:48]))
    assert all(a["model_version"] == "v1" for a in answers)
    assert follower.dropped > before
