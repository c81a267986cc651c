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


class Instruments:
    """The platform's instruments, created once per process."""

    def __init__(self) -> None:
        m = meter()
        self.request_latency = m.create_histogram(
            "request_latency_seconds", unit="s", description="Latency of HTTP requests in seconds"
        )
        self.request_count = m.create_counter("request_count", description="HTTP requests")
        self.batch_size = m.create_histogram(
            "batch_size", description="Images per forward pass formed by the dynamic batcher"
        )
        self.queue_wait = m.create_histogram(
            "queue_wait_seconds", unit="s", description="Time a request waited for its batch"
        )
        self.batch_job_duration = m.create_histogram(
            "batch_job_duration_seconds", unit="s", description="Batch job wall time"
        )
        self.task_restarts = m.create_counter(
            "background_task_restarts", description="Background tasks restarted after a crash"
        )
        self.consumer_entries = m.create_counter(
            "consumer_entries",
            description="Stream entries a consumer group finished, by outcome "
            "(handled, failed, dead_lettered)",
        )
        self.relay_published = m.create_counter(
            "relay_published_events", description="Events the relay published to Redis Streams"
        )
        self.hot_swaps = m.create_counter(
            "hot_swaps", description="Prod-version switches applied by this API process"
        )
        self._gauges: dict[str, object] = {}

    def gauge(self, name: str, description: str, callback) -> None:
        """Register an observable gauge once; ``callback`` returns [(value, labels)]."""
        if name in self._gauges:
            self._gauges[name] = callback
            return
        from opentelemetry.metrics import Observation

        self._gauges[name] = callback

        def observe(_options):
            return [Observation(v, labels) for v, labels in self._gauges[name]()]

        meter().create_observable_gauge(name, callbacks=[observe], description=description)


def register_holder_gauges(descriptions: dict[str, str], holder: dict) -> None:
    """Gauges whose samples are whatever ``holder['stats'][name]`` holds at scrape time."""
    inst = instruments()
    for name, text in descriptions.items():
        inst.gauge(name, text, lambda name=name: holder.get("stats", {}).get(name, []))


@cache
def instruments() -> Instruments:
    """The process-wide instruments."""
    return Instruments()
