"""Errors that help over HTTP: an unknown model names the known ones and the closest; an
unknown field in a JSON body names the accepted fields (issue 22)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.e2e.test_inference_http import png_b64

pytestmark = pytest.mark.anyio


async def _register(client, name: str, state_dict_file) -> None:
    body = {"model_version": "v1", "artifact_path": str(state_dict_file("v1.pt"))}
    r = await client.post(f"/models/{name}/versions", json=body)
    assert r.status_code == 201, r.text


async def test_an_unknown_model_lists_the_known_ones_and_the_closest(
    client, model_name, state_dict_file
) -> None:
    await _register(client, model_name, state_dict_file)
    typo = model_name[:-1]  # one character short: the registered name is the closest
    image = png_b64(np.zeros((28, 28), dtype=np.uint8))
    v2 = {"inputs": [{"name": "x", "shape": [1, 784], "datatype": "FP32", "data": [0.0] * 784}]}
    requests = [
        ("post", "/predict", {"model_name": typo, "image_b64": image}),
        ("post", "/predict", {"model_name": typo, "image_b64": image, "model_version": "v1"}),
        ("post", f"/v2/models/{typo}/infer", v2),
        ("post", f"/v2/models/{typo}/versions/v1/infer", v2),
        ("get", f"/v2/models/{typo}", None),
        ("get", f"/v2/models/{typo}/ready", None),
        ("post", "/batch/submit", {"model_name": typo, "dataset_id": "fashion_mnist_100"}),
        (
            "post",
            "/gates",
            {
                "model_name": typo,
                "candidate_version": "v1",
                "baseline_version": "v1",
                "dataset_id": "fashion_mnist_100",
            },
        ),
        ("get", f"/models/{typo}/versions", None),
    ]
    for method, path, body in requests:
        r = await client.request(method, path, json=body)
        detail = r.json()["detail"]
        assert r.status_code == 404, (path, r.text)
        assert detail.startswith(f"unknown model {typo!r} (known: "), (path, detail)
        assert detail.endswith(f"; did you mean {model_name}?"), (path, detail)


async def test_an_unknown_field_in_a_json_body_lists_the_accepted_fields(
    client, model_name
) -> None:
    image = png_b64(np.zeros((28, 28), dtype=np.uint8))
    cases = [
        (
            "/predict",
            {"model_name": model_name, "image_b64": image, "version": "v1"},
            "unknown field 'version' in the request body; accepted fields: "
            "model_name, image_b64, model_version, return_probabilities",
        ),
        (
            "/batch/submit",
            {"model_name": model_name, "dataset_id": "fashion_mnist_100", "batchsize": 8},
            "unknown field 'batchsize' in the request body; accepted fields: "
            "model_name, dataset_id, config, model_version",
        ),
        (
            "/batch/submit",
            {"model_name": model_name, "dataset_id": "d", "config": {"batchsize": 8}},
            "unknown field 'batchsize' in config; accepted fields: batch_size, shard_size",
        ),
    ]
    for path, body, expected in cases:
        r = await client.post(path, json=body)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["detail"].startswith(expected), (path, r.json())
    gate = {"model_name": model_name, "candidate_version": "v2", "baseline_version": "v1"}
    r = await client.post("/gates", json={**gate, "colour": "red"})
    detail = r.json()["detail"]
    assert r.status_code == 400 and detail.startswith("unknown field 'colour' in the request"), (
        r.text
    )
    assert "candidate_version, baseline_version" in detail, detail


async def test_a_flag_sent_as_a_number_or_a_string_is_refused(client, model_name) -> None:
    # An optional body is converted leniently by the framework: {"force": 0} passed for false.
    for body in ({"force": 0}, {"force": "true"}, {"force": 1, "reason": "x"}):
        r = await client.post(f"/models/{model_name}/versions/v1/promote", json=body)
        assert r.status_code == 400, (body, r.text)
        assert "Expected `bool`" in r.json()["detail"] and "$.force" in r.json()["detail"]
        r = await client.request("DELETE", "/keys/nobody-here", json=body)
        assert r.status_code == 400, (body, r.text)
