"""Batch endpoints through HTTP: validation, status, listing and cancellation."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.anyio


async def _model(client, name: str, artifact, promote: bool = True) -> None:
    r = await client.post(
        f"/models/{name}/versions", json={"model_version": "v1", "artifact_path": str(artifact)}
    )
    assert r.status_code == 201, r.text
    if promote:
        assert (await client.post(f"/models/{name}/versions/v1/promote")).status_code == 200


async def test_submit_status_list_cancel(client, model_name, trained_artifacts) -> None:
    await _model(client, model_name, trained_artifacts["v1"])
    r = await client.post(
        "/batch/submit",
        json={
            "model_name": model_name,
            "dataset_id": "fashion_mnist_1000",
            "config": {"batch_size": 64},
        },
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued" and body["model_version"] == "v1"
    job_id = body["job_id"]

    status = (await client.get(f"/batch/status/{job_id}")).json()
    assert status["job_id"] == job_id and status["progress"] == {"done": 0, "total": 1000}
    assert status["status"] in {"queued", "running"}, status
    assert status.get("result_metrics") is None, status  # no metrics before the job has run

    listed = (await client.get("/batch", params={"model_name": model_name})).json()
    assert [j["job_id"] for j in listed] == [job_id]
    assert (
        await client.get("/batch", params={"model_name": model_name, "status": "succeeded"})
    ).json() == []

    r = await client.post(f"/batch/{job_id}/cancel", json={"reason": "changed my mind"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert "changed my mind" in r.json()["error"]
    assert (await client.post(f"/batch/{job_id}/cancel")).status_code == 200  # idempotent


async def test_submit_validation(client, model_name, trained_artifacts) -> None:
    await _model(client, model_name, trained_artifacts["v1"], promote=False)
    base = {"model_name": model_name, "dataset_id": "fashion_mnist_100", "model_version": "v1"}
    cases = [
        ({**base, "model_name": "no-such-model"}, 404, "unknown model"),
        ({**base, "model_version": "v7"}, 404, "no version 'v7'"),
        ({"model_name": model_name, "dataset_id": "fashion_mnist_100"}, 409, "no prod version"),
        ({**base, "dataset_id": "nope_10"}, 400, "nope"),
        ({**base, "dataset_id": "fashion_mnist_0"}, 400, "fashion_mnist"),
        ({**base, "dataset_id": "fashion_mnist_999999"}, 400, "10,000"),
        ({**base, "config": {"batch_size": 0}}, 400, "between 1 and 4096"),
        ({**base, "config": {"batch_size": 5000}}, 400, "between 1 and 4096"),
        ({**base, "config": {"batch_size": "big"}}, 400, "batch_size"),
        ({**base, "config": {"batch_size": 8, "nope": 1}}, 400, "nope"),
        ({"dataset_id": "fashion_mnist_100"}, 400, "model_name"),
    ]
    for body, status, message in cases:
        r = await client.post("/batch/submit", json=body)
        assert r.status_code == status, (body, r.text)
        assert message in r.json()["detail"] + str(r.json().get("errors", "")), (body, r.text)
    for url, status in (
        (f"/batch/status/{uuid.uuid4()}", 404),
        ("/batch/status/not-a-uuid", 404),
        ("/batch?status=bogus", 400),
        ("/batch?limit=0", 400),
    ):
        assert (await client.get(url)).status_code == status, url
    assert (await client.post(f"/batch/{uuid.uuid4()}/cancel")).status_code == 404
    assert (await client.post("/batch/not-a-uuid/cancel")).status_code == 404
