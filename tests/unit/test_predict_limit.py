"""bench-predict's limit: the formula, the targets against it, the floor app and the decode rate."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bench.http_floor import BODY
from bench.http_floor import app as floor_app
from bench.predict_limit import decode_rate, lone_request_loop, machine_limit
from bench.predict_targets import targets


def _loop(graph: str, batch: int, qps: float, p50: float, threads: int, processes: int = 1):
    return {
        "run": "bare loop",
        "graph": graph,
        "batch": batch,
        "qps": qps,
        "p50_ms": p50,
        "p99_ms": p50 * 2,
        "threads": threads,
        "processes": processes,
    }


LOOPS = [
    _loop("eager", 1, 1800, 0.5, 2),
    _loop("eager", 32, 3500, 9.0, 2),
    _loop("frozen", 1, 2300, 0.40, 2),
    _loop("frozen", 32, 9200, 3.5, 2),
    _loop("frozen", 1, 2500, 0.38, 1),
    _loop("frozen", 32, 8000, 4.0, 1),
    _loop("frozen", 32, 8800, 7.3, 1, processes=2),
]
FLOOR = {"qps": 55_000, "c1_p50_ms": 0.2, "concurrency": 32}
DECODE = {"per_core_per_s": 16_000, "p50_us": 50.0}


def test_the_limit_is_the_issues_formula_on_the_best_machine_wide_loop():
    limit = machine_limit(2, FLOOR, DECODE, LOOPS)
    # 2/55,000 + 1/16,000 + 2/9,200 s of core time per request (the one-process 2-thread loop
    # beats the two one-thread processes, and the one-thread single process is not machine-wide).
    per_request = 2 / 55_000 + 1 / 16_000 + 2 / 9_200
    assert limit["req_per_s"] == pytest.approx(2 / per_request, rel=1e-3)
    assert 6_300 < limit["req_per_s"] < 6_350
    assert limit["inputs"]["model_img_per_s"] == 9_200
    # c=1: the floor's p50, one decode and the fastest batch-1 forward of the served graph.
    assert limit["c1_latency_ms"] == pytest.approx(0.2 + 0.05 + 0.38)
    assert limit["inputs"]["forward_b1_threads"] == 1


def test_the_c1_latency_with_gaps_is_the_floor_plus_the_lone_loops_decode_and_forward():
    lone = {"decode_p50_ms": 0.06, "forward_p50_ms": 0.31, "gap_ms": 0.1}
    limit = machine_limit(2, FLOOR, DECODE, LOOPS, lone)
    assert limit["c1_with_gaps_ms"] == pytest.approx(0.2 + 0.06 + 0.31)
    assert limit["c1_latency_ms"] == pytest.approx(0.2 + 0.05 + 0.38)  # the issue's, unchanged
    assert "c1_with_gaps_ms" not in machine_limit(2, FLOOR, DECODE, LOOPS)


def test_the_limit_on_the_framework_puts_its_floor_in_the_http_floors_place():
    framework = {"qps": 14_000, "c1_p50_ms": 0.3, "concurrency": 32}
    limit = machine_limit(2, FLOOR, DECODE, LOOPS, framework=framework)
    on = limit["on_framework"]
    assert on["req_per_s"] == pytest.approx(2 / (2 / 14_000 + 1 / 16_000 + 2 / 9_200), rel=1e-3)
    assert on["req_per_s"] < limit["req_per_s"]  # a framework only adds to the floor
    assert on["c1_latency_ms"] == pytest.approx(0.3 + 0.05 + 0.38)
    assert on["framework_floor_us"] == pytest.approx(2 / 14_000 * 1e6, rel=1e-3)


def test_the_framework_floor_decodes_the_apis_body_and_refuses_another():
    from litestar.testing import TestClient

    from bench.framework_floor import app

    with TestClient(app) as client:
        ok = client.post("/predict", json={"model_name": "m", "image_b64": "AAAA"})
        assert ok.status_code == 200
        assert ok.json() == {"prediction": 0, "label": "T-shirt/top", "model_version": "floor"}
        assert ok.headers["x-server-pid"].isdigit()
        # The body really is decoded into the request's struct: a wrong shape is refused.
        assert client.post("/predict", json={"model_name": "m"}).status_code == 400


def test_the_lone_request_loop_decodes_waits_and_forwards_each_request():
    calls = []

    def run(x):
        calls.append(tuple(x.shape))
        return x.sum(dim=(2, 3))

    images = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    meta = {"mean": 0.5, "std": 0.25}
    lone = lone_request_loop(run, meta, images, iters=10, gap_s=0.002)
    assert calls == [(1, 1, 28, 28)] * 30  # 20 warm-up requests, then 10 measured, one image each
    assert lone["iterations"] == 10 and lone["gap_ms"] == 2.0
    assert lone["decode_p50_ms"] > 0 and lone["forward_p50_ms"] > 0


def _run(run: str, conc: int, qps: float, p50: float, p99: float, processes=1, endpoint="predict"):
    return {
        "run": run,
        "processes": processes,
        "endpoint": endpoint,
        "concurrency": conc,
        "qps": qps,
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": 0,
    }


def test_targets_pass_and_miss_against_the_limit_the_peer_and_predict():
    runs = [
        _run("litserve", 1, 300, 3.0, 5.0, 2),
        _run("litserve", 32, 2000, 15.0, 40.0, 2),
        _run("baseline", 1, 800, 1.2, 2.0),
        _run("baseline", 32, 900, 34.0, 68.0),
        _run("ours", 1, 900, 0.9, 1.5, 2),
        _run("ours", 32, 5000, 6.0, 15.0, 2),
        _run("ours", 1, 880, 0.95, 1.6, 2, "v2"),
        _run("ours", 32, 4000, 8.0, 20.0, 2, "v2"),
    ]
    report = {"http": runs, "limit": {"req_per_s": 6_000.0, "c1_latency_ms": 0.7}}
    checks = targets(report, 2)["x2"]["checks"]
    assert checks["c32 req/s ÷ limit"]["value"] == pytest.approx(5000 / 6000, abs=1e-3)
    assert checks["c32 req/s ÷ limit"]["met"]
    assert checks["c32 req/s ÷ LitServe"]["met"]  # 2.5x
    assert checks["c1 p50 ÷ latency limit"]["value"] == pytest.approx(0.9 / 0.7, abs=1e-3)
    assert not checks["c1 p50 ÷ latency limit"]["met"]  # 1.29 > 1.25
    assert checks["v2 c1 req/s ÷ /predict"]["met"]  # 0.98
    assert not checks["v2 c32 req/s ÷ /predict"]["met"]  # 0.80
    assert targets(report, 2)["x2"]["default"]


def test_the_floor_reads_the_whole_body_and_answers_its_fixed_json():
    received = [
        {"type": "http.request", "body": b'{"a":', "more_body": True},
        {"type": "http.request", "body": b"1}", "more_body": False},
    ]
    sent: list[dict] = []

    async def receive():
        return received.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(floor_app({"type": "http", "path": "/predict"}, receive, send))
    assert received == []  # every chunk read
    assert sent[0]["status"] == 200
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(BODY)).encode()
    assert sent[1]["body"] == BODY


def test_the_decode_rate_runs_the_apis_decode_on_real_pngs():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    rate = decode_rate(images, seconds=0.2)
    assert rate["requests"] > 0
    assert rate["per_core_per_s"] > 0
    assert rate["function"].startswith("api.inference.decode_image_b64")
