"""The process's OpenTelemetry meter, read by a Prometheus reader, and the declarations of its
instruments that the exposition (observability/exposition.py) needs to show a declared metric
with no sample yet as an empty series instead of leaving it absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
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
_service: list[str] = []  # OTEL_SERVICE_NAME, as the settings read it


def set_role(role: str, service: str | None = None) -> None:
    """This process's role (only its instruments get empty series), and its service.name."""
    _role[:] = [role]
    _service[:] = [service] if service else []


def shows_empty(declared: Declared) -> bool:
    """Whether this process shows ``declared`` as an empty series while it has no sample."""
    return not _role or _role[0] in declared.roles


def service_name() -> str:
    """The configured service name (set_role), else the platform's name."""
    return _service[0] if _service else "inference-eval-platform"


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
