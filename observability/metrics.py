"""OpenTelemetry metrics exported in the Prometheus text format at /metrics."""

from __future__ import annotations

from functools import cache

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
    5, 10, 30, 60, 300, 900,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 128, 256)


@cache
def meter() -> metrics.Meter:
    """The platform's meter, backed by a Prometheus reader (set up once per process)."""
    reader = PrometheusMetricReader()
    views = [
        View(
            instrument_name="*_seconds",
            aggregation=ExplicitBucketHistogramAggregation(LATENCY_BUCKETS),
        ),
        View(
            instrument_name="batch_size",
            aggregation=ExplicitBucketHistogramAggregation(BATCH_BUCKETS),
        ),
    ]
    provider = MeterProvider(metric_readers=[reader], views=views)
    metrics.set_meter_provider(provider)
    return provider.get_meter("inference-eval-platform")


def render_prometheus() -> tuple[bytes, str]:
    """The current metrics as Prometheus text, with its content type."""
    meter()
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
