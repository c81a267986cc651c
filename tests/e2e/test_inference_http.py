"""Online inference through HTTP: /predict, v2 infer, bad input, overload, hot swap."""

from __future__ import annotations

import asyncio
import base64
import io
import random
from dataclasses import replace

import msgspec
import numpy as np
import pytest
import torch
from PIL import Image

from api.app import create_app
from ml.artifacts import load_model, read_metadata
from ml.datasets import load_dataset
from ml.preprocess import to_model_input
from tests.e2e.conftest import app_client

pytestmark = pytest.mark.anyio


def png_b64(image: np.ndarray, mode: str = "L") -> str:
    buf = io.BytesIO()
    Image.fromarray(image).convert(mode).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def test_images() -> tuple[np.ndarray, np.ndarray]:
    from tests.conftest import ROOT

    d = load_dataset("fashion_mnist_64", cache_dir=ROOT / ".platform" / "cache")
    return d.images.numpy(), d.labels.numpy()


def local_predictions(path, images: np.ndarray) -> np.ndarray:
    meta = read_metadata(path)
    model = load_model(path, meta)
    with torch.inference_mode():
        return model(to_model_input(images, meta)).argmax(1).numpy()


async def _register(client, name: str, version: str, path, promote: bool = False) -> None:
    r = await client.post(
        f"/models/{name}/versions", json={"model_version": version, "artifact_path": str(path)}
    )
    assert r.status_code == 201, r.text
    if promote:
        r = await client.post(f"/models/{name}/versions/{version}/promote")
        assert r.status_code == 200, r.text


async def test_predict_matches_the_model_run_locally(
    client, model_name, trained_artifacts, test_images
) -> None:
    await _register(client, model_name, "v1", trained_artifacts["v1"], promote=True)
    images, _ = test_images
    expected = local_predictions(trained_artifacts["v1"], images[:16])
    got = []
    for i in range(16):
        r = await client.post(
            "/predict", json={"model_name": model_name, "image_b64": png_b64(images[i])}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_version"] == "v1" and body["latency_ms"] > 0
        got.append(body["prediction"])
    assert got == expected.tolist()
    r = await client.post(
        "/predict",
        json={
            "model_name": model_name,
            "image_b64": png_b64(images[0]),
            "model_version": "v1",
            "return_probabilities": True,
        },
    )
    probs = r.json()["probabilities"]
    assert len(probs) == 10 and abs(sum(probs) - 1) < 1e-3
    assert int(np.argmax(probs)) == expected[0]


async def test_v2_infer_all_input_kinds(client, model_name, trained_artifacts, test_images) -> None:
    await _register(client, model_name, "v1", trained_artifacts["v1"], promote=True)
    images, _ = test_images
    expected = local_predictions(trained_artifacts["v1"], images[:6]).tolist()
    body = {
        "id": "req-42",
        "inputs": [
            {
                "name": "a",
                "shape": [2, 1, 28, 28],
                "datatype": "FP32",
                "data": (images[:2] / 255.0).tolist(),
            },
            {
                "name": "b",
                "shape": [2, 784],
                "datatype": "UINT8",
                "data": images[2:4].reshape(-1).tolist(),
            },
            {
                "name": "c",
                "shape": [2],
                "datatype": "BYTES",
                "data": [png_b64(images[4]), png_b64(images[5])],
            },
        ],
    }
    r = await client.post(f"/v2/models/{model_name}/infer", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["id"] == "req-42" and out["model_version"] == "v1"
    preds = next(o for o in out["outputs"] if o["name"] == "predictions")
    assert preds["shape"] == [6] and preds["datatype"] == "INT64"
    assert preds["data"] == expected
    probs = next(o for o in out["outputs"] if o["name"] == "probabilities")
    assert probs["shape"] == [6, 10] and len(probs["data"]) == 60

    r = await client.post(
        f"/v2/models/{model_name}/versions/v1/infer",
        json={"inputs": body["inputs"][1:2], "outputs": [{"name": "logits"}]},
    )
    assert [o["name"] for o in r.json()["outputs"]] == ["logits"]
    assert (await client.get("/v2/health/live")).json() == {"live": True}
    assert (await client.get("/v2/health/ready")).json() == {"ready": True}
    meta = (await client.get(f"/v2/models/{model_name}")).json()
    assert meta["name"] == model_name and meta["versions"] == ["v1"]
    assert (await client.get(f"/v2/models/{model_name}/versions/v1/ready")).json()["ready"] is True


async def test_bad_input_gets_a_clear_4xx(
    client, model_name, trained_artifacts, test_images, platform
) -> None:
    await _register(client, model_name, "v1", trained_artifacts["v1"])
    images, _ = test_images
    good = png_b64(images[0])
    big = png_b64(np.zeros((32, 32), dtype=np.uint8))
    infer = f"/v2/models/{model_name}/versions/v1/infer"
    cases = [
        (
            "/predict",
            {"model_name": model_name, "image_b64": "@@not-base64@@", "model_version": "v1"},
            400,
            "not valid base64",
        ),
        (
            "/predict",
            {
                "model_name": model_name,
                "image_b64": base64.b64encode(b"hello").decode(),
                "model_version": "v1",
            },
            400,
            "not a PNG",
        ),
        (
            "/predict",
            {"model_name": model_name, "image_b64": big, "model_version": "v1"},
            400,
            "expected a 28x28 image, got 32x32",
        ),
        ("/predict", {"model_name": model_name, "image_b64": good}, 409, "no prod version"),
        (
            "/predict",
            {"model_name": model_name, "image_b64": good, "model_version": "v9"},
            404,
            "no version 'v9'",
        ),
        ("/predict", {"model_name": "no-such-model", "image_b64": good}, 404, "unknown model"),
        ("/predict", {"model_name": model_name}, 400, "image_b64"),
        ("/predict", {"model_name": model_name, "image_b64": good, "extra": 1}, 400, "extra"),
        (
            infer,
            {"inputs": [{"name": "x", "shape": [1, 784], "datatype": "FP32", "data": [0.0] * 783}]},
            400,
            "needs 784 values, data has 783",
        ),
        (
            infer,
            {
                "inputs": [
                    {"name": "x", "shape": [1, 3, 28, 28], "datatype": "FP32", "data": [0.0] * 2352}
                ]
            },
            400,
            "not supported",
        ),
        (
            infer,
            {"inputs": [{"name": "x", "shape": [1, 784], "datatype": "FP64", "data": [0.0] * 784}]},
            400,
            "datatype 'FP64'",
        ),
        (
            infer,
            {
                "inputs": [
                    {"name": "x", "shape": [1, 784], "datatype": "UINT8", "data": [300] * 784}
                ]
            },
            400,
            "0..255",
        ),
        (
            infer,
            {"inputs": [{"name": "x", "shape": [2], "datatype": "BYTES", "data": [good]}]},
            400,
            "data has 1",
        ),
        (
            infer,
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, 784],
                        "datatype": "FP32",
                        "data": [[0.0] * 10, [0.0]],
                    }
                ]
            },
            400,
            "equal length",
        ),
        (infer, {"inputs": []}, 400, "inputs is empty"),
        (
            infer,
            {
                "inputs": [
                    {"name": "x", "shape": [1, 784], "datatype": "FP32", "data": [0.0] * 784}
                ],
                "outputs": [{"name": "nope"}],
            },
            400,
            "unknown output",
        ),
    ]
    for url, body, status, message in cases:
        r = await client.post(url, json=body)
        assert r.status_code == status, (body, r.text)
        detail = r.json()["detail"] + str(r.json().get("errors", ""))
        assert message in detail, (message, r.text)

    small = replace(platform, settings=platform.settings.changed(api={"max_body_bytes": 2048}))
    async with app_client(create_app(small, run_relay=False)) as c:
        r = await c.post("/predict", json={"model_name": model_name, "image_b64": "A" * 4096})
        assert r.status_code == 413


async def test_fuzzed_requests_never_get_5xx(
    client, model_name, trained_artifacts, test_images
) -> None:
    await _register(client, model_name, "v1", trained_artifacts["v1"], promote=True)
    images, _ = test_images
    rng = random.Random(1234)
    seeds = [
        {"model_name": model_name, "image_b64": png_b64(images[0])},
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 784],
                    "datatype": "UINT8",
                    "data": images[0].reshape(-1).tolist(),
                }
            ]
        },
    ]
    junk = [
        None,
        -1,
        0,
        1.5,
        1e308,
        "",
        "x" * 300,
        [],
        {},
        [1, [2]],
        True,
        "../../etc/passwd",
        "\x00",
    ]

    def mutate(value, depth=0):
        if isinstance(value, dict):
            value = dict(value)
            for key in list(value):
                roll = rng.random()
                if roll < 0.15:
                    del value[key]
                elif roll < 0.45:
                    value[key] = rng.choice(junk)
                elif depth < 3:
                    value[key] = mutate(value[key], depth + 1)
            if rng.random() < 0.1:
                value[rng.choice(["zz", "id", "shape"])] = rng.choice(junk)
            return value
        if isinstance(value, list) and value:
            if rng.random() < 0.3:
                return value[: rng.randrange(len(value))]
            return [mutate(value[0], depth + 1), *value[1:]]
        if isinstance(value, str) and value and rng.random() < 0.5:
            i = rng.randrange(len(value))
            return value[:i] + rng.choice("!@=A") + value[i + 1 :]
        return value

    urls = ["/predict", f"/v2/models/{model_name}/infer"]
    statuses = []
    for i in range(250):
        url = urls[i % 2]
        if rng.random() < 0.2:
            content = rng.randbytes(rng.randrange(1, 400))
        else:
            content = msgspec.json.encode(mutate(seeds[i % 2]))
        r = await client.post(url, content=content, headers={"content-type": "application/json"})
        statuses.append(r.status_code)
        assert r.status_code < 500, (url, content[:200], r.text)
        r.json()  # every answer is JSON
    assert any(s >= 400 for s in statuses) and any(s == 200 for s in statuses)


async def test_overload_sheds_with_503_and_retry_after(
    platform, model_name, trained_artifacts
) -> None:
    tight = replace(
        platform, settings=platform.settings.changed(serving={"max_queue": 2, "max_batch": 1})
    )
    async with app_client(create_app(tight, run_relay=False)) as c:
        await _register(c, model_name, "v1", trained_artifacts["v1"], promote=True)
        body = {
            "inputs": [
                {"name": "x", "shape": [64, 784], "datatype": "UINT8", "data": [0] * (64 * 784)}
            ]
        }
        big = await c.post(f"/v2/models/{model_name}/infer", json=body)
        # More images than the queue can ever hold is the caller's error, not an overload.
        assert big.status_code == 400 and "at most 2 images per request" in big.json()["detail"]
        image = png_b64(np.zeros((28, 28), dtype=np.uint8))
        results = await asyncio.gather(
            *(
                c.post("/predict", json={"model_name": model_name, "image_b64": image})
                for _ in range(40)
            )
        )
        codes = [r.status_code for r in results]
        assert set(codes) <= {200, 503} and 200 in codes and 503 in codes
        assert all(r.headers["retry-after"] for r in results if r.status_code == 503)
        assert any("queue is full" in r.json()["detail"] for r in results if r.status_code == 503)


async def test_promotion_hot_swaps_under_load_without_errors(
    client, model_name, trained_artifacts, test_images
) -> None:
    images, _ = test_images
    await _register(client, model_name, "v1", trained_artifacts["v1"], promote=True)
    await _register(client, model_name, "v2", trained_artifacts["v2"])
    stop = asyncio.Event()
    seen: list[tuple[int, str]] = []

    async def load(worker: int) -> None:
        i = 0
        while not stop.is_set():
            r = await client.post(
                "/predict",
                json={"model_name": model_name, "image_b64": png_b64(images[(worker + i) % 64])},
            )
            seen.append((r.status_code, r.json().get("model_version", r.text)))
            i += 1

    tasks = [asyncio.create_task(load(w)) for w in range(6)]
    await asyncio.sleep(0.5)
    r = await client.post(
        f"/models/{model_name}/versions/v2/promote", json={"reason": "swap under load"}
    )
    assert r.status_code == 200
    for _ in range(200):
        if seen and seen[-1][1] == "v2":
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*tasks)
    assert all(code == 200 for code, _ in seen), [s for s in seen if s[0] != 200][:3]
    versions = [v for _, v in seen]
    assert versions[0] == "v1" and versions[-1] == "v2"
    # Once the swap happened, no request went back to the old version.
    first_v2 = versions.index("v2")
    assert set(versions[first_v2 + 6 :]) <= {"v2"}


async def test_tampered_artifact_is_not_served(
    client, platform, model_name, trained_artifacts
) -> None:
    await _register(client, model_name, "v1", trained_artifacts["v1"], promote=True)
    stored = platform.artifacts.path_for(f"{model_name}/v1/model.pt")
    stored.write_bytes(stored.read_bytes() + b"tampered")
    r = await client.post(
        "/predict",
        json={"model_name": model_name, "image_b64": png_b64(np.zeros((28, 28), np.uint8))},
    )
    # 409, not 503: retrying cannot heal a changed file (and workers must not retry it forever)
    assert r.status_code == 409
    assert "sha256" in r.json()["detail"]


async def test_metrics_are_exported(client, model_name, trained_artifacts) -> None:
    await _register(client, model_name, "v1", trained_artifacts["v1"], promote=True)
    await client.post(
        "/predict",
        json={"model_name": model_name, "image_b64": png_b64(np.zeros((28, 28), np.uint8))},
    )
    text = (await client.get("/metrics")).text
    for name in (
        "request_latency_seconds_bucket",
        "request_count_total",
        "batch_size_bucket",
        "queue_wait_seconds_bucket",
        "models_loaded",
    ):
        assert name in text, name
    assert f'model_name="{model_name}"' in text


async def test_api_start_warms_up_prod_models(platform, model_name, trained_artifacts) -> None:
    async with app_client(create_app(platform, run_relay=False)) as c:
        await _register(c, model_name, "v1", trained_artifacts["v1"], promote=True)
    app = create_app(
        replace(
            platform,
            settings=platform.settings.changed(serving={"warm_up": True, "model_cache_size": 50}),
        )
    )
    async with app_client(app):
        for _ in range(200):
            if (model_name, "v1") in app.state.inference.cache.loaded:
                break
            await asyncio.sleep(0.05)
        assert (model_name, "v1") in app.state.inference.cache.loaded
