"""What a load run measured: percentiles over the successful requests, a JSON report, a table."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np


@dataclass
class LoadResult:
    """What one load run measured."""

    endpoint: str
    mode: str
    concurrency: int
    total: int
    ok: int
    errors: int
    duration_s: float
    qps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    target_rate: float | None = None
    status_counts: dict[str, int] = field(default_factory=dict)


def summarize(
    latencies: list[float],
    statuses: list[int],
    duration: float,
    *,
    endpoint: str,
    mode: str,
    concurrency: int,
    rate: float | None,
) -> LoadResult:
    """Percentiles over successful requests; every non-200 counts as an error."""
    ok_lat = np.array([lat for lat, s in zip(latencies, statuses, strict=True) if s == 200]) * 1000
    counts: dict[str, int] = {}
    for s in statuses:
        counts[str(s)] = counts.get(str(s), 0) + 1
    pct = (lambda q: float(np.percentile(ok_lat, q))) if len(ok_lat) else (lambda q: float("nan"))
    ok = len(ok_lat)
    return LoadResult(
        endpoint=endpoint,
        mode=mode,
        concurrency=concurrency,
        total=len(statuses),
        ok=ok,
        errors=len(statuses) - ok,
        duration_s=round(duration, 3),
        qps=round(ok / duration, 1) if duration else 0.0,
        p50_ms=round(pct(50), 3),
        p95_ms=round(pct(95), 3),
        p99_ms=round(pct(99), 3),
        mean_ms=round(float(ok_lat.mean()), 3) if ok else float("nan"),
        max_ms=round(float(ok_lat.max()), 3) if ok else float("nan"),
        target_rate=rate,
        status_counts=counts,
    )


def save_report(
    results: list[LoadResult], directory: Path, name: str | None = None, extra: dict | None = None
) -> Path:
    """Write the JSON report (``loadtest_<timestamp>.json`` unless named)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / (name or f"loadtest_{stamp}.json")
    payload = {"created_at": stamp, "results": [asdict(r) for r in results], **(extra or {})}
    path.write_text(json.dumps(payload, indent=2))
    return path


def print_table(results: list[LoadResult], title: str) -> None:
    """A rich table of results."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in (
        "endpoint",
        "mode",
        "conc.",
        "requests",
        "QPS",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
    ):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r.endpoint,
            r.mode if not r.target_rate else f"open@{r.target_rate:g}/s",
            str(r.concurrency),
            str(r.total),
            f"{r.qps:,.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p95_ms:.2f}",
            f"{r.p99_ms:.2f}",
            str(r.errors),
        )
    Console(width=None if sys.stdout.isatty() else 120).print(table)
