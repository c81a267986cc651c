"""The platform's instruments, exported in the Prometheus text format (observability/exposition.py).

Every instrument is declared with its kind (observability.meter), so the exposition can show a
declared metric that has no sample yet as an empty series instead of leaving it absent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache

from opentelemetry import metrics
from opentelemetry.metrics import Observation

from observability.meter import (
    API,
    BATCH_BUCKETS,
    DECLARED,
    EXPECTED,
    LATENCY_BUCKETS,
    WORKER,
    Declared,
    meter,
    set_role,
    shows_empty,
)
from observability.recorders import DeferredRecords, DictCounter

# The exposition and the entrypoints import the declarations and set_role from here too.
__all__ = [
    "DECLARED",
    "EXPECTED",
    "GATE_RESULTS",
    "Declared",
    "Instruments",
    "instruments",
    "register_holder_gauges",
    "set_role",
    "shows_empty",
]
GATE_RESULTS = ("pass", "fail", "inconclusive", "error")
CANARY_SHARE = "Share (0 to 1) of a model's unpinned requests this API process routes to a canary"
Samples = list[tuple[float, dict[str, str]]]


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
        # Request path hooks and traffic capture (api/online_hooks.py, api/capture.py).
        self.online_hook_errors = c(
            "online_hook_errors", "Answered requests a request-path subscriber failed on", API
        )
        self.traffic_captured = c(
            "traffic_captured", "Requests sampled for capture and written to traffic.captured", API
        )
        self.traffic_dropped = c(
            "traffic_dropped",
            "Sampled requests dropped before traffic.captured (queue_full, redis_error)",
            API,
        )
        self.traffic_recorded = c(
            "traffic_recorded", "Captured requests stored in PostgreSQL by traffic-recorder", WORKER
        )
        # Shadow mirror and canary (api/online_mirror.py, consumers/shadow_evaluation.py).
        self.online_mirrored = c(
            "online_mirrored", "Requests answered by both versions of a shadow or canary", API
        )
        self.online_dropped = c(
            "online_dropped",
            "Requests not mirrored (queue_full, busy, outcomes_full, redis_error)",
            API,
        )
        self.online_outcomes = c(
            "online_outcomes", "Paired outcomes stored by shadow-evaluation", WORKER
        )
        # The router (api/online_mirror.py) sets the callback; empty until it does.
        self.gauge("canary_share", CANARY_SHARE, lambda: [], roles=API)
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

    def gauge(
        self, name: str, description: str, callback: Callable[[], Samples], roles=API | WORKER
    ) -> None:
        """Register an observable gauge once (a later call replaces the callback)."""
        with self._lock:
            known = name in self._gauges
            self._gauges[name] = callback
        if known:
            return
        DECLARED[name] = Declared("gauge", description, roles=roles)

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
