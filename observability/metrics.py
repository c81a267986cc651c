"""OpenTelemetry metrics, exported in the Prometheus text format (observability/exposition.py).

Every instrument is declared here with its kind, so the exposition can show a declared metric
that has no sample yet as an empty series instead of leaving it absent.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 128, 256)
GATE_RESULTS = ("pass", "fail", "error")
Samples = list[tuple[float, dict[str, str]]]


@dataclass(frozen=True)
class Declared:
    """What the exposition needs to show an instrument that has no sample yet."""

    kind: str  # counter | histogram | gauge
    description: str
    buckets: tuple[float, ...] = ()
    roles: frozenset[str] = frozenset({"api", "worker"})  # the processes that record it


DECLARED: dict[str, Declared] = {}
# Histogram label sets shown with zero observations until recorded: Prometheus sees no increase
# in a series that is born with its first observation, so a rare event (a model's first batch
# job) would never reach a rate() panel. name -> label sets.
EXPECTED: dict[str, set[frozenset[tuple[str, str]]]] = {}
API, WORKER = frozenset({"api"}), frozenset({"worker"})
_role: list[str] = []


def set_role(role: str) -> None:
    """Name this process's role (api or worker): only its own instruments get empty series."""
    _role[:] = [role]


def shows_empty(declared: Declared) -> bool:
    """Whether this process shows ``declared`` as an empty series while it has no sample."""
    return not _role or _role[0] in declared.roles


def service_name() -> str:
    """OTEL_SERVICE_NAME, else the platform's name."""
    return os.environ.get("OTEL_SERVICE_NAME") or "inference-eval-platform"


@cache
def meter() -> metrics.Meter:
    """The platform's meter, backed by a Prometheus reader (set up once per process)."""
    # Scope labels (otel_scope_*) would add three constant labels to every series.
    reader = PrometheusMetricReader(scope_info_enabled=False)
    views = [
        View(
            instrument_type=Histogram,  # not the *_seconds gauges (relay_lag_seconds)
            instrument_name="*_seconds",
            aggregation=ExplicitBucketHistogramAggregation(LATENCY_BUCKETS),
        ),
        View(
            instrument_name="batch_size",
            aggregation=ExplicitBucketHistogramAggregation(BATCH_BUCKETS),
        ),
    ]
    resource = Resource.create({"service.name": service_name()})
    provider = MeterProvider(metric_readers=[reader], views=views, resource=resource)
    metrics.set_meter_provider(provider)
    return provider.get_meter("inference-eval-platform")


class DeferredRecords:
    """A histogram's measurements recorded in bulk, not one by one on a request's path.

    ``record`` queues the measurement; the queue reaches the histogram ``delay_s`` after the
    first measurement waiting (one loop timer) and before every collection, so a scrape sees
    every request that finished before it. Recorded together, the SDK's code stays in the CPU's
    caches: one at a time, after a forward pass had evicted them, the records cost ~100 µs of
    each lone /predict on the 2-core VM (in-process, interleaved with the baseline app).
    """

    def __init__(self, histogram: metrics.Histogram, delay_s: float = 0.1) -> None:
        self.histogram, self.delay_s = histogram, delay_s
        self._pending: deque[tuple[float, dict[str, str]]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def record(self, value: float, attributes: dict[str, str]) -> None:
        """Queue one measurement (on an event loop; without one it is recorded at once)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.histogram.record(value, attributes)
            return
        self._pending.append((value, attributes))
        if self._loop is not loop:  # a timer set on an earlier loop may never fire
            self._loop, self._timer = loop, None
        if self._timer is None:
            self._timer = loop.call_later(self.delay_s, self._flush_now)

    def _flush_now(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Record every queued measurement (from any thread: deque pops are atomic)."""
        pop, record = self._pending.popleft, self.histogram.record
        while True:
            try:
                value, attributes = pop()
            except IndexError:
                return
            record(value, attributes)


class DictCounter:
    """A counter kept in a plain dict and read at scrape time (an asynchronous counter): for
    events on every request's path, where a synchronous add cost ~10 µs of each /predict."""

    def __init__(
        self,
        name: str,
        description: str,
        labels: tuple[str, ...],
        roles=API | WORKER,
        before_read: Callable[[], object] | None = None,
    ) -> None:
        self.labels, self.before_read = labels, before_read
        self._counts: dict[tuple[str, ...], int] = {}
        DECLARED[name] = Declared("counter", description, roles=roles)
        meter().create_observable_counter(name, callbacks=[self._observe], description=description)

    def add(self, *values: str) -> None:
        """Count one event with these label values (in the order of ``labels``)."""
        self._counts[values] = self._counts.get(values, 0) + 1

    def _observe(self, _options) -> list[Observation]:
        # Asynchronous instruments are read before the histograms (the SDK's collect order).
        if self.before_read is not None:
            self.before_read()
        return [
            Observation(n, dict(zip(self.labels, values, strict=True)))
            for values, n in list(self._counts.items())
        ]


class Instruments:
    """The platform's instruments, created once per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gauges: dict[str, Callable[[], Samples]] = {}
        h, c = self._histogram, self._counter
        # HTTP (api/middleware.py); model_name only once the name resolved to a model.
        self.request_latency = DeferredRecords(
            h("request_latency_seconds", "Latency of HTTP requests", roles=API)
        )
        # Flushes the queued latencies first: a scrape sees every request that finished.
        self.request_count = DictCounter(
            "request_count",
            "HTTP requests by endpoint, model, status",
            ("endpoint", "model_name", "status"),
            API,
            before_read=self.request_latency.flush,
        )
        # Online inference (ml/serving.py through bootstrap.build_model_cache).
        self.batch_size = h(
            "batch_size",
            "Images per forward pass formed by the dynamic batcher",
            BATCH_BUCKETS,
            unit="",
            roles=API,
        )
        self.queue_wait = h("queue_wait_seconds", "Time a request waited for its batch", roles=API)
        self.cache_hits = DictCounter(
            "model_cache_hits", "Model lookups served from memory", ("model_name",)
        )
        self.cache_misses = c("model_cache_misses", "Model lookups that had to load the model")
        self.cache_loads = c("model_cache_loads", "Model loads by outcome (ok, failed)")
        self.hot_swaps = c("hot_swaps", "Prod-version switches applied by this API process", API)
        # Batch jobs and consumer groups (consumers/).
        self.batch_job_duration = h(
            "batch_job_duration_seconds", "Batch job wall time", roles=WORKER
        )
        self.handler_duration = h(
            "consumer_handler_seconds",
            "Time a consumer group's handler took per stream entry",
            roles=WORKER,
        )
        self.consumer_entries = c(
            "consumer_entries",
            "Entries a consumer group finished, by outcome (handled, failed, dead_lettered)",
            WORKER,
        )
        self.gate_verdicts = c("gate_verdicts", "Gate verdicts by result (pass, fail, error)")
        self.task_restarts = c(
            "background_task_restarts", "Background tasks restarted after a crash or exit"
        )

    def _histogram(
        self, name: str, text: str, buckets=LATENCY_BUCKETS, unit: str = "s", roles=API | WORKER
    ) -> metrics.Histogram:
        DECLARED[name] = Declared("histogram", text, tuple(buckets), roles)
        return meter().create_histogram(name, unit=unit, description=text)

    def _counter(self, name: str, text: str, roles=API | WORKER) -> metrics.Counter:
        DECLARED[name] = Declared("counter", text, roles=roles)
        return meter().create_counter(name, description=text)

    def gauge(self, name: str, description: str, callback: Callable[[], Samples]) -> None:
        """Register an observable gauge once (a later call replaces the callback)."""
        with self._lock:
            known = name in self._gauges
            self._gauges[name] = callback
        if known:
            return
        DECLARED[name] = Declared("gauge", description)

        def observe(_options):
            return [Observation(v, labels) for v, labels in self._gauges[name]()]

        meter().create_observable_gauge(name, callbacks=[observe], description=description)

    def record_batch(self, stats) -> None:
        """A batch the dynamic batcher formed (ml.serving.BatchStats)."""
        self.batch_size.record(stats.size)
        for wait in stats.queue_wait_s:
            self.queue_wait.record(wait)

    def record_cache(self, model_name: str, event: str) -> None:
        """A model cache event: hit, miss, loaded or load_failed."""
        if event == "hit":
            self.cache_hits.add(model_name)
        elif event == "miss":
            self.cache_misses.add(1, {"model_name": model_name})
        else:
            self.cache_loads.add(
                1, {"model_name": model_name, "outcome": "ok" if event == "loaded" else "failed"}
            )

    def record_gate_verdict(self, result: str) -> None:
        """One gate verdict; ``result`` is one of GATE_RESULTS (anything else counts as error)."""
        self.gate_verdicts.add(1, {"result": result if result in GATE_RESULTS else "error"})

    def expect_models(self, model_names) -> None:
        """Show an empty batch_job_duration_seconds series for each registered model."""
        EXPECTED["batch_job_duration_seconds"] = {
            frozenset({("model_name", name)}) for name in model_names
        }

    def touch(self) -> None:
        """Create the series whose label values are known in advance, at zero."""
        for result in GATE_RESULTS:
            self.gate_verdicts.add(0, {"result": result})


def register_holder_gauges(descriptions: dict[str, str], holder: dict) -> None:
    """Gauges whose samples are whatever ``holder['stats'][name]`` holds at scrape time."""
    inst = instruments()
    for name, text in descriptions.items():
        inst.gauge(name, text, lambda name=name: holder.get("stats", {}).get(name, []))


@cache
def instruments() -> Instruments:
    """The process-wide instruments."""
    inst = Instruments()
    inst.touch()
    return inst
