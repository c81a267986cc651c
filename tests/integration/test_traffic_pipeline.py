"""Traffic end to end on real servers: /predict captured by a policy set with the CLI, stored
by a worker's traffic-recorder group, labelled through POST /feedback, frozen with
dataset-from-traffic (CLI) and evaluated by a batch job (HTTP) like any other dataset."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from sqlalchemy import func, select

from api.app import create_app
from domain.traffic.handlers import content_digest
from ml.datasets import load_dataset
from storage import event_store
from storage.tables import captured_requests, traffic_dataset_items
from tests.conftest import ROOT
from tests.e2e.conftest import app_client
from tests.e2e.test_inference_http import png_b64
from tests.integration.test_batch_pipeline import register, wait_job

pytestmark = pytest.mark.anyio


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database.url,
        "REDIS_URL": settings.redis.url,
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "warning",
    }
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


async def _count(p, name: str) -> int:
    async with p.engine.connect() as conn:
        q = select(func.count()).where(captured_requests.c.model_name == name)
        return int(await conn.scalar(q))


async def test_captured_labelled_frozen_and_evaluated(
    pipeline, pipeline_settings, start_worker, model_name, trained_artifacts
) -> None:
    p = pipeline
    data = load_dataset("fashion_mnist_64", cache_dir=ROOT / ".platform" / "cache")
    images, labels = data.images.numpy()[:40], data.labels.numpy()[:40]
    await register(p, model_name, trained_artifacts["v1"])
    start_worker()
    done = _cli(pipeline_settings, "capture", model_name, "--fraction", "1", "--max-per-s", "500")
    assert done.returncode == 0 and "capture 1 of answered" in done.stdout, done.stderr
    bad = _cli(pipeline_settings, "capture", model_name, "--fraction", "2")
    assert bad.returncode != 0 and "fraction" in bad.stderr and "Traceback" not in bad.stderr

    app = create_app(p, run_relay=False)
    ids = [f"{model_name}-r{i}" for i in range(len(images))]
    async with app_client(app) as client:
        await app.state.online.capture.refresh_once()
        predictions = []
        for rid, image in zip(ids, images, strict=True):
            r = await client.post(
                "/predict",
                json={"model_name": model_name, "image_b64": png_b64(image)},
                headers={"X-Request-Id": rid},
            )
            assert r.status_code == 200 and r.json()["request_id"] == rid, r.text
            predictions.append(r.json()["prediction"])
        deadline = time.monotonic() + 60
        while await _count(p, model_name) < len(ids) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert await _count(p, model_name) == len(ids)  # stored by the worker's group
        feedback = [
            {"request_id": rid, "label": int(lb)} for rid, lb in zip(ids, labels, strict=True)
        ][:30]
        r = await client.post("/feedback", json=feedback)
        assert r.status_code == 200 and r.json()["labelled"] == 30, r.text

        done = _cli(pipeline_settings, "dataset-from-traffic", model_name, "week1")
        assert done.returncode == 0, done.stderr
        assert "traffic:week1: 40 requests" in done.stdout and "30 labelled" in done.stdout
        again = _cli(pipeline_settings, "dataset-from-traffic", model_name, "traffic:week1")
        assert again.returncode == 1 and "exists already" in again.stderr
        none = _cli(
            pipeline_settings, "dataset-from-traffic", model_name, "later", "--since", "2099-01-01"
        )
        assert none.returncode == 1 and "no captured requests" in none.stderr

        async with p.engine.connect() as conn:
            history = await event_store.load_stream(conn, "traffic-dataset-week1")
            t = traffic_dataset_items
            rows = (
                await conn.execute(
                    select(t.c.request_id, t.c.input, t.c.input_dtype, t.c.label)
                    .where(t.c.dataset_id == "traffic:week1")
                    .order_by(t.c.idx)
                )
            ).all()
        frozen = history[0].event
        assert frozen.request_ids == ids and frozen.labelled == 30
        assert frozen.digest == content_digest(list(rows))

        # A batch job on the frozen traffic, over HTTP: the 30 labelled requests, scored.
        body = {"model_name": model_name, "dataset_id": "traffic:nope"}
        r = await client.post("/batch/submit", json=body)
        assert r.status_code == 400 and "no frozen traffic dataset" in r.text, r.text
        body = {
            **body,
            "dataset_id": "traffic:week1",
            "config": {"batch_size": 16, "shard_size": 16},
        }
        r = await client.post("/batch/submit", json=body)
        assert r.status_code == 202, r.text
    job = await wait_job(p, r.json()["job_id"])
    assert job.status == "succeeded", job.error
    assert job.progress.total == 30
    expected = float(np.mean(np.array(predictions[:30]) == labels[:30]))
    # The job rounds accuracy to 6 digits.
    assert job.result_metrics["accuracy"] == pytest.approx(expected, abs=1e-6)
