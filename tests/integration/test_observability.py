"""Observability end to end: one trace id from HTTP to every shard, and every dashboard panel
evaluated by a real Prometheus (Debian's package) scraping a real API process and worker."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from cli.processes import free_port, stop_process
from observability import prometheus
from tests.conftest import isolated
from tests.integration.observability_stack import (
    log_lines,
    png_b64,
    register,
    run_job,
    start_stack,
    wait_for,
)
from tests.unit.test_ops_files import DASHBOARD, data_panels, grouping_labels, metric_names

pytestmark = pytest.mark.anyio
GATE_ENDS = {"passed", "failed", "inconclusive", "errored"}


OBSERVABILITY_REDIS_DB = 14  # the shared fixtures use 0; audit 11, pipeline 12, relay 13


@pytest.fixture(scope="module")
def stack_urls(server_urls) -> Iterator[dict[str, str]]:
    """A database and a Redis index of the stack's own: its worker reads whole streams, and on
    the shared ones it would also take earlier tests' unfinished shards (seen: the poison job
    still running after 120 s while the worker worked through other tests' leftovers)."""
    from settings import Settings

    base = Settings().changed(
        database={"url": server_urls["database_url"]}, redis={"url": server_urls["redis_url"]}
    )
    own = isolated(base, OBSERVABILITY_REDIS_DB, "obs")
    with asyncio.Runner() as runner:
        settings = runner.run(own.__aenter__())
        try:
            yield {"DATABASE_URL": settings.database.url, "REDIS_URL": settings.redis.url}
        finally:
            runner.run(own.__aexit__(None, None, None))


@pytest.fixture(scope="module")
def stack(stack_urls, trained_artifacts, tmp_path_factory):
    """API + worker on the stack's servers, each announcing its /metrics; stopped at the end."""
    import_root = tmp_path_factory.getbasetemp()
    stack, procs = start_stack(tmp_path_factory.mktemp("observability"), import_root, stack_urls)
    try:
        yield stack
    finally:
        for proc in procs:
            stop_process(proc)


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    """Debian's prometheus, installed here when missing; skip only where that cannot be done."""
    binary = prometheus.find_prometheus()
    if binary is None and os.geteuid() == 0 and shutil.which("apt-get"):
        for cmd in (
            ["apt-get", "install", "-y", "-q", "prometheus"],
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "prometheus"],
        ):
            subprocess.run(cmd, capture_output=True, timeout=600, check=False)
            binary = prometheus.find_prometheus()
            if binary:
                break
    if binary is None:
        pytest.skip(f"prometheus is not installed and could not be: {prometheus.INSTALL_HINT}")
    return binary


def _dashboard_exprs() -> list[tuple[str, str]]:
    import json

    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in data_panels(dash) for t in p["targets"]]


def test_every_dashboard_metric_exists_right_after_start(stack) -> None:
    exposed = "\n".join(stack.initial_metrics.values())
    names = {line.split("{")[0].split(" ")[0] for line in exposed.splitlines() if line[:1] != "#"}
    for title, expr in _dashboard_exprs():
        missing = metric_names(expr) - names
        assert not missing, f"{title}: {sorted(missing)} absent from /metrics at start"


async def test_one_trace_links_a_submit_to_its_shards_and_the_evaluation(
    stack, stack_urls, trained_artifacts
) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    name = f"trace-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        await register(client, name, "v1", trained_artifacts["v1"], promote=True)
        submitted, status = await run_job(client, name, shard_size=250)
    assert status["status"] == "succeeded", status
    trace_id, job_id = submitted.headers["x-trace-id"], submitted.json()["job_id"]
    correlation = submitted.headers["x-correlation-id"]
    assert len(trace_id) == 32 and int(trace_id, 16)

    (submit,) = [
        line
        for line in log_lines(stack.api_log)
        if line["event"] == "http_request"
        and line["path"] == "/batch/submit"
        and line["trace_id"] == trace_id
    ]
    assert submit["correlation_id"] == correlation and submit["status"] == 202

    def worker_lines() -> list[dict]:
        lines = [line for line in log_lines(stack.worker_log) if line.get("job_id") == job_id]
        done = any(
            line["event"] == "job_completed"
            for line in log_lines(stack.worker_log)
            if line.get("trace_id") == trace_id
        )
        return lines if done else []

    lines = wait_for(worker_lines, 30, "the worker's log lines of the job")
    shards = [line for line in lines if line.get("stream") == "jobs.shards"]
    assert sorted(int(line["shard"]) for line in shards) == [0, 1, 2, 3]
    assert {line["trace_id"] for line in lines} == {trace_id}, lines
    assert {line["correlation_id"] for line in lines} == {correlation}

    # The events the workers recorded carry the same trace: the plan, every shard, the metrics.
    engine = create_async_engine(stack_urls["DATABASE_URL"], poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT event_type, trace_context FROM event_log WHERE correlation_id = :c"
                    ),
                    {"c": uuid.UUID(correlation)},
                )
            ).all()
    finally:
        await engine.dispose()
    types = [row.event_type for row in rows]
    assert types.count("BatchShardCompleted") == 4 and "EvaluationRecorded" in types, types
    assert all(row.trace_context.split("-")[1] == trace_id for row in rows), rows


async def _drive_traffic(stack, artifacts) -> None:
    """Predictions, a v2 request, errors, a batch job, a dead-lettered shard, two promotions,
    and a gate (which evaluates the baseline too)."""
    good, bad = f"prom-{uuid.uuid4().hex[:8]}", f"poison-{uuid.uuid4().hex[:8]}"
    image = png_b64(np.zeros((28, 28), np.uint8))
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        await register(client, good, "v1", artifacts["v1"], promote=True)
        await register(client, good, "v2", artifacts["v2"], promote=True)
        _, status = await run_job(client, good, shard_size=500)
        assert status["status"] == "succeeded", status
        await register(client, bad, "v1", artifacts["v1"], promote=True)
        stored = stack.artifacts / bad / "v1" / "model.pt"
        stored.write_bytes(stored.read_bytes()[:-10] + b"corrupted!")  # its sha256 fails now
        _, status = await run_job(client, bad, shard_size=1000)
        assert status["status"] == "failed" and "sha256" in status["error"], status
        gate = await client.post(
            "/gates",
            json={
                "model_name": good,
                "candidate_version": "v2",
                "baseline_version": "v1",
                "dataset_id": "fashion_mnist_1000",
            },
        )
        assert gate.status_code == 202, gate.text
        gate_id = gate.json()["gate_id"]
        deadline = time.monotonic() + 180
        while (await client.get(f"/gates/{gate_id}")).json()["status"] not in GATE_ENDS:
            assert time.monotonic() < deadline, "the gate did not finish"
            await asyncio.sleep(0.5)
        for i in range(20):  # two bursts, so rate() sees an increase even on a new series
            r = await client.post("/predict", json={"model_name": good, "image_b64": image})
            assert r.status_code == 200, r.text
            if i == 9:
                await asyncio.sleep(2.5)
        r = await client.post(
            f"/v2/models/{good}/infer",
            json={
                "inputs": [
                    {
                        "name": "input",
                        "shape": [2, 1, 28, 28],
                        "datatype": "UINT8",
                        "data": [0] * (2 * 28 * 28),
                    }
                ]
            },
        )
        assert r.status_code == 200, r.text
        missing = await client.post("/predict", json={"model_name": "nobody", "image_b64": image})
        assert missing.status_code == 404
        broken = await client.post("/predict", json={"model_name": good, "image_b64": "%%"})
        assert broken.status_code == 400


def _problem(url: str, exprs: list[str]) -> str | None:
    """Why a panel fails: a query that does not parse, returns no series or lacks a label it
    groups by, or no query of the panel with a number (None when the panel shows data)."""
    finite = False
    for expr in exprs:
        reply = prometheus.api_get(url, "/api/v1/query", query=expr)
        if reply.get("status") != "success":
            return f"{expr}: error: {reply.get('error')}"
        result = reply["data"]["result"]
        if not result:
            return f"{expr}: no series"
        labels = grouping_labels(expr) - {"le"}
        if not any(all(series["metric"].get(label) for label in labels) for series in result):
            return f"{expr}: no series carries the labels {sorted(labels)}: {result[:3]}"
        finite |= any(math.isfinite(float(series["value"][1])) for series in result)
    return None if finite else f"no finite value in {exprs}"


async def test_every_dashboard_panel_returns_data_in_a_real_prometheus(
    stack, trained_artifacts, prometheus_binary, tmp_path
) -> None:
    config = prometheus.write_config(tmp_path / "prometheus.yml", stack.targets, 1.0)
    listen = f"127.0.0.1:{free_port()}"
    proc = prometheus.start_prometheus(
        prometheus_binary, config, tmp_path / "data", listen, tmp_path / "prometheus.log"
    )
    url = f"http://{listen}"
    try:
        prometheus.wait_ready(url, proc)

        def both_up() -> bool:
            active = prometheus.api_get(url, "/api/v1/targets")["data"]["activeTargets"]
            up = {t["labels"]["job"] for t in active if t["health"] == "up"}
            return {"platform-api", "platform-worker"} <= up

        wait_for(both_up, 60, "Prometheus to scrape the API and the worker")
        await _drive_traffic(stack, trained_artifacts)
        panels: dict[str, list[str]] = {}
        for title, expr in _dashboard_exprs():
            panels.setdefault(title, []).append(expr)
        deadline = time.monotonic() + 45
        while True:  # the gauges refresh every 5 s and Prometheus scrapes every second
            problems = {t: p for t, exprs in panels.items() if (p := _problem(url, exprs))}
            if not problems or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        assert problems == {}, "\n".join(f"{k} -> {v}" for k, v in problems.items())
        assert len(panels) >= 22
        # The traffic itself shows: the dead letter, the gate verdict, the promotions.
        for expr in (
            'max(dead_letter_count{group="batch-inference", stream="jobs.shards"}) >= 1',
            'sum(consumer_entries_total{outcome="dead_lettered"}) >= 1',
            "sum(gate_verdicts_total) >= 1",
            "sum(hot_swaps_total) >= 2",
            'sum(model_cache_loads_total{outcome="failed"}) >= 1',
        ):
            wait_for(
                lambda e=expr: prometheus.api_get(url, "/api/v1/query", query=e)["data"]["result"],
                30,
                expr,
            )
    finally:
        stop_process(proc)
