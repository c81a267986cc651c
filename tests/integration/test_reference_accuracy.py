"""Issue 22: the accuracy shown for a version is its figure on its reference dataset.

A version is evaluated on its own dataset, then by small jobs on another one (through HTTP and
through `python -m cli batch`, both of which warn); `GET /models`, the versions JSON,
`python -m cli list` and the console still show the reference figure, naming its dataset and
image count, and the console's chart has one series per dataset.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from api.app import create_app
from tests.conftest import ROOT
from tests.e2e.conftest import app_client

pytestmark = pytest.mark.anyio
OPERATOR_KEY = "operator-reference-key-0123456789"
OWN, OTHER = "fashion_mnist_1000", "mnist_5"  # the artifact was trained on fashion_mnist


async def _job(client, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(f"/batch/status/{job_id}", headers={"x-api-key": OPERATOR_KEY})
        job = r.json()
        if job["status"] in {"succeeded", "failed", "cancelled"}:
            assert job["status"] == "succeeded", job
            return job
        assert time.monotonic() < deadline, f"job {job_id} did not end: {job}"
        await asyncio.sleep(0.2)


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database.url,
        "REDIS_URL": settings.redis.url,
        "ARTIFACTS_DIR": str(settings.files.artifacts_dir),
        "LOG_LEVEL": "warning",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def test_jobs_on_other_datasets_leave_the_reference_figure_in_every_view(
    pipeline, pipeline_settings, start_worker, model_name, trained_artifacts
) -> None:
    keys = {OPERATOR_KEY: ("operator-ref", "operator")}
    settings = pipeline_settings.changed(security={"api_keys": keys, "rate_limit_per_s": 0})
    h = {"x-api-key": OPERATOR_KEY}
    start_worker()
    async with app_client(create_app(pipeline, settings=settings, run_relay=False)) as client:
        body = {"model_version": "v1", "artifact_path": str(trained_artifacts["v1"])}
        r = await client.post(f"/models/{model_name}/versions", json=body, headers=h)
        assert r.status_code == 201, r.text
        submit = {"model_name": model_name, "dataset_id": OWN, "model_version": "v1"}
        r = await client.post("/batch/submit", json=submit, headers=h)
        assert r.status_code == 202 and "warning" not in r.json(), r.text
        own = await _job(client, r.json()["job_id"])
        figure = own["result_metrics"]["accuracy"]

        r = await client.post("/batch/submit", json={**submit, "dataset_id": OTHER}, headers=h)
        assert r.status_code == 202, r.text
        warning = r.json()["warning"]
        assert f"{OTHER} is not the reference dataset of {model_name} v1" in warning
        assert "(fashion_mnist)" in warning
        await _job(client, r.json()["job_id"])

        # The CLI's job on the other dataset warns too, and is the latest evaluation.
        out = await asyncio.to_thread(_cli, pipeline_settings, "batch", model_name, OTHER, "v1")
        assert out.returncode == 0, out.stderr
        assert "warning:" in out.stderr and f"{OTHER} is not the reference dataset" in out.stderr

        label = f"{figure:.2%} on {OWN} (1,000 images)"
        [version] = (await client.get(f"/models/{model_name}/versions", headers=h)).json()
        assert version["reference_dataset"] == "fashion_mnist"
        assert version["accuracy"]["label"] == label and version["accuracy"]["images"] == 1000
        assert version["accuracy"]["job_id"] == own["job_id"]
        assert version["metrics"]["dataset_id"] == OWN and version["metrics"]["accuracy"] == figure
        assert set(version["evaluations"]) == {OWN, OTHER}
        assert version["evaluations"][OTHER]["images"] == 5

        listed, cursor = [], None
        while True:
            r = await client.get("/models", params={"cursor": cursor} if cursor else {}, headers=h)
            listed += [m for m in r.json() if m["model_name"] == model_name]
            if not (cursor := r.headers.get("x-next-cursor")):
                break
        assert [m["accuracy"]["label"] for m in listed] == [label]

        out = await asyncio.to_thread(_cli, pipeline_settings, "list", model_name)
        assert out.returncode == 0, out.stderr
        [row] = [line for line in out.stdout.splitlines() if " v1 " in line]
        assert label in row and OTHER not in row

        r = await client.post("/ui/login", data={"key": OPERATOR_KEY})
        assert r.status_code == 303, r.text
        page = (await client.get(f"/ui/models/{model_name}")).text
        assert label in page
        assert f"Accuracy on {OWN} (1,000 images)" in page  # the chart names its dataset
        assert f"Accuracy on {OTHER}" not in page  # and no series on the other one
