"""The observability package without servers: exposition, trace context, log ids, targets."""

from __future__ import annotations

import json
import os

import structlog
from opentelemetry import trace

from observability import exposition, prometheus, tracing
from observability.logging import add_trace_ids
from observability.metrics import DECLARED, EXPECTED, instruments


def _lines(name: str) -> list[str]:
    text = exposition.render_prometheus()[0].decode()
    return [line for line in text.splitlines() if line.startswith(name)]


def test_a_declared_histogram_without_samples_is_an_empty_series() -> None:
    instruments()
    assert DECLARED["queue_wait_seconds"].kind == "histogram"
    lines = _lines("queue_wait_seconds")
    assert any(line.startswith("queue_wait_seconds_count") for line in lines), lines
    assert any('le="+Inf"' in line for line in lines)


def test_expected_model_series_stay_until_recorded_and_then_count() -> None:
    inst = instruments()
    inst.expect_models(["unit-a", "unit-b"])
    try:
        inst.batch_job_duration.record(2.0, {"model_name": "unit-a"})
        counts = {
            line.split("{")[1].split("}")[0]: float(line.split()[-1])
            for line in _lines("batch_job_duration_seconds_count")
        }
        assert counts['model_name="unit-a"'] >= 1.0
        assert counts['model_name="unit-b"'] == 0.0  # shown empty, not absent
    finally:
        EXPECTED.pop("batch_job_duration_seconds", None)


def test_gate_verdicts_exist_at_zero_for_every_result() -> None:
    instruments().record_gate_verdict("not-a-result")  # counted as an error, no new series
    lines = _lines("gate_verdicts_total")
    assert {line.split('"')[1] for line in lines} == {"pass", "fail", "inconclusive", "error"}


def test_traceparent_round_trip_and_log_ids() -> None:
    tracing.configure_tracing("unit")
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert tracing.context_from("garbage") is None
    with tracing.tracer().start_as_current_span("child", context=tracing.context_from(parent)):
        assert tracing.current_trace_id() == "0af7651916cd43dd8448eb211c80319c"
        child = tracing.current_traceparent()
        assert child.split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
        assert child.split("-")[2] != "b7ad6b7169203331"  # the child's own span id
        with structlog.contextvars.bound_contextvars(correlation_id="c-1"):
            event = add_trace_ids(None, "info", {"correlation_id": "c-1"})
        assert event["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert not trace.get_current_span().get_span_context().is_valid
    assert add_trace_ids(None, "info", {}) == {"trace_id": None, "correlation_id": None}


def test_targets_are_announced_withdrawn_and_pruned(tmp_path) -> None:
    path = exposition.announce_target(tmp_path, "platform-worker", "127.0.0.1:9")
    (entry,) = json.loads(path.read_text())
    assert entry == {
        "targets": ["127.0.0.1:9"],
        "labels": {"job": "platform-worker", "pid": str(os.getpid())},
    }
    dead = tmp_path / "platform-worker-x-999999999.json"
    dead.write_text(json.dumps([{"targets": ["x:1"], "labels": {"pid": "999999999"}}]))
    assert prometheus.prune_targets(tmp_path) == [dead]
    assert path.exists()  # this process is alive
    exposition.withdraw_target(path)
    assert not path.exists()
    assert exposition.scrape_address("0.0.0.0", 9100) == "127.0.0.1:9100"  # noqa: S104


def test_generated_prometheus_config_reads_the_target_files(tmp_path) -> None:
    config = json.loads(prometheus.write_config(tmp_path / "p.yml", tmp_path / "t", 1).read_text())
    (job,) = config["scrape_configs"]
    assert job["file_sd_configs"][0]["files"] == [str(tmp_path / "t" / "*.json")]
    assert config["global"]["scrape_interval"] == "1000ms"


def test_cache_hits_are_counted_and_exposed_as_a_counter() -> None:
    inst = instruments()
    before = {line.split()[0]: float(line.split()[-1]) for line in _lines("model_cache_hits_total")}
    for _ in range(3):
        inst.record_cache("unit-hits", "hit")
    after = {line.split()[0]: float(line.split()[-1]) for line in _lines("model_cache_hits_total")}
    key = 'model_cache_hits_total{model_name="unit-hits"}'
    assert after[key] == before.get(key, 0.0) + 3
    assert any(
        line.startswith("# TYPE model_cache_hits_total counter")
        for line in exposition.render_prometheus()[0].decode().splitlines()
    )


def test_requests_are_counted_and_exposed_as_a_counter_by_endpoint_model_and_status() -> None:
    inst = instruments()
    key = 'request_count_total{endpoint="/unit",model_name="unit-m",status="200"}'
    other = 'request_count_total{endpoint="/unit",model_name="",status="404"}'

    def counts() -> dict[str, float]:
        return {line.split()[0]: float(line.split()[-1]) for line in _lines("request_count_total")}

    before = counts()
    for _ in range(2):
        inst.request_count.add("/unit", "unit-m", "200")
    inst.request_count.add("/unit", "", "404")
    after = counts()
    assert after[key] == before.get(key, 0.0) + 2
    assert after[other] == before.get(other, 0.0) + 1
    assert any(
        line.startswith("# TYPE request_count_total counter")
        for line in exposition.render_prometheus()[0].decode().splitlines()
    )


def test_request_latencies_are_recorded_in_bulk_and_every_scrape_sees_them() -> None:
    import asyncio

    latency = instruments().request_latency
    key = 'request_latency_seconds_count{endpoint="/unit-deferred",model_name=""}'

    def count() -> float:
        return {
            line.split()[0]: float(line.split()[-1])
            for line in _lines("request_latency_seconds_count")
        }.get(key, 0.0)

    async def run() -> tuple[int, float, int]:
        for _ in range(3):
            latency.record(0.002, {"endpoint": "/unit-deferred", "model_name": ""})
        queued = len(latency._pending)
        scraped = count()  # a scrape flushes what is queued
        latency.record(0.004, {"endpoint": "/unit-deferred", "model_name": ""})
        await asyncio.sleep(latency.delay_s * 3)  # the timer flushes without a scrape
        return queued, scraped, len(latency._pending)

    before = count()
    queued, scraped, left = asyncio.run(run())
    assert queued >= 3 and scraped == before + 3 and left == 0
    assert count() == before + 4
    latency.record(0.001, {"endpoint": "/unit-deferred", "model_name": ""})  # no loop: at once
    assert len(latency._pending) == 0 and count() == before + 5


def test_spans_record_only_where_they_can_be_exported(monkeypatch) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_TRACES_SAMPLER",
    ):
        monkeypatch.delenv(name, raising=False)
    sampler = tracing._sampler(exporting=False)
    assert sampler is not None
    quiet = TracerProvider(sampler=sampler).get_tracer("unit")
    with quiet.start_as_current_span("root") as span:
        assert not span.is_recording()
        assert tracing.current_trace_id() is not None  # ids for headers, logs and events
    parent = tracing.context_from("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    with quiet.start_as_current_span("child", context=parent) as span:
        assert span.is_recording()  # a caller that samples its trace gets it continued
    assert tracing._sampler(exporting=True) is None  # the SDK's default: every root recorded
    assert tracing._sampler(exporting=False, sampler_name="always_on") is None  # as configured


def test_where_nothing_records_a_server_span_has_ids_only_and_continues_a_trace(
    monkeypatch,
) -> None:
    monkeypatch.setattr(tracing, "_ids_only", [True])
    ids = []
    for _ in range(2):
        span, token = tracing.start_server_span("POST", {}, {"url.path": "/predict"})
        try:
            assert not span.is_recording()
            ids.append(tracing.current_trace_id())
            assert ids[-1] == f"{span.get_span_context().trace_id:032x}"
        finally:
            tracing.end_server_span(span, token)
        assert tracing.current_trace_id() is None  # the context before it is back
    assert ids[0] != ids[1]  # a new trace per request without a traceparent
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    span, token = tracing.start_server_span("POST", {"traceparent": incoming}, {})
    try:
        assert tracing.current_trace_id() == "0af7651916cd43dd8448eb211c80319c"
        own = span.get_span_context()
        assert own.span_id != 0xB7AD6B7169203331 and own.trace_flags.sampled
        assert tracing.current_traceparent().startswith("00-0af7651916cd43dd8448eb211c80319c-")
    finally:
        tracing.end_server_span(span, token)
