"""The Prometheus exposition: /metrics text, a worker's own metrics server, scrape target files.

A declared instrument with no sample yet is shown as one empty series (a counter or gauge at 0,
a histogram with zero observations), so every dashboard query finds its metric right after
start; the empty series goes as soon as real samples exist.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample

from observability.metrics import DECLARED, EXPECTED, Declared, instruments, shows_empty


def _empty(name: str, declared: Declared) -> Metric:
    """A family with one series and no observations."""
    if declared.kind == "counter":
        return CounterMetricFamily(name, declared.description, value=0)
    if declared.kind == "histogram":
        buckets = [(f"{b}", 0) for b in declared.buckets] + [("+Inf", 0)]
        return HistogramMetricFamily(name, declared.description, buckets=buckets, sum_value=0)
    return GaugeMetricFamily(name, declared.description, value=0)


def _add_expected(family: Metric, buckets: tuple[float, ...]) -> None:
    """Zero-observation series for the expected label sets the family does not have yet."""
    present = {
        frozenset((k, v) for k, v in sample.labels.items() if k != "le")
        for sample in family.samples
    }
    for labels in EXPECTED[family.name] - present:
        base = dict(labels)
        for bound in [*(f"{b}" for b in buckets), "+Inf"]:
            family.samples.append(Sample(f"{family.name}_bucket", {**base, "le": bound}, 0.0))
        family.samples.append(Sample(f"{family.name}_count", base, 0.0))
        family.samples.append(Sample(f"{family.name}_sum", base, 0.0))


class Exposition:
    """A prometheus_client collector: the OpenTelemetry reader's families plus empty ones."""

    def collect(self) -> Iterator[Metric]:
        """Every family of the default registry, then the declared ones still without samples."""
        instruments()  # declares every instrument
        seen: set[str] = set()
        for family in REGISTRY.collect():
            if family.name in EXPECTED and family.type == "histogram":
                _add_expected(family, DECLARED[family.name].buckets)
            if family.samples:
                seen.add(family.name)
                yield family
        for name, declared in sorted(DECLARED.items()):
            if name not in seen and shows_empty(declared):
                family = _empty(name, declared)
                if EXPECTED.get(name):  # the expected label sets instead of an unlabeled one
                    family.samples.clear()
                    _add_expected(family, declared.buckets)
                yield family


EXPOSITION = Exposition()


def render_prometheus() -> tuple[bytes, str]:
    """The current metrics as Prometheus text, with its content type."""
    return generate_latest(EXPOSITION), CONTENT_TYPE_LATEST


def serve_metrics(host: str, port: int = 0) -> int:
    """Serve /metrics on ``host:port`` in a thread (port 0: a free one); returns the port."""
    server, _thread = start_http_server(port, addr=host, registry=EXPOSITION)
    return server.server_port


def scrape_address(host: str, port: int) -> str:
    """The address Prometheus should scrape: a wildcard bind is announced as loopback."""
    if host in ("0.0.0.0", "", "::"):  # noqa: S104 - a comparison, not a bind
        host = "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def targets_dir(state_dir: Path) -> Path:
    """Where processes on this host announce their scrape addresses (Prometheus file_sd)."""
    return state_dir / "prometheus" / "targets"


def announce_target(directory: Path, job: str, address: str) -> Path:
    """Write a Prometheus file_sd entry for this process (``just monitor`` reads the folder)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{job}-{socket.gethostname()}-{os.getpid()}.json"
    entry = [{"targets": [address], "labels": {"job": job, "pid": str(os.getpid())}}]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entry))
    tmp.replace(path)  # Prometheus never reads a half-written file
    return path


def withdraw_target(path: Path | None) -> None:
    """Remove a target file written by announce_target (a missing one is fine)."""
    if path is not None:
        path.unlink(missing_ok=True)
