"""What the console draws, computed here so templates only place it: inline SVG line charts, the
confusion-matrix heatmap and the gate's verdict cells (the same units as `just gate`)."""

from __future__ import annotations

from typing import Any

from domain.console.views import VersionPoint
from events.gates import GateCheck

# The left margin holds the value labels (e.g. '1,234.56 ms'), the right one only the last dot.
WIDTH, HEIGHT, LEFT, RIGHT, PAD_Y = 640, 180, 96, 24, 24
HEAT_LEVELS = 9  # console.css defines .heat-0 ... .heat-8, each with a readable text colour


def line_chart(
    points: list[VersionPoint], field: str, title: str, fmt: str, unit: str = ""
) -> dict[str, Any] | None:
    """Geometry of one series across versions (None when no version has the figure)."""
    known = [(p.model_version, getattr(p, field)) for p in points if getattr(p, field) is not None]
    if not known:
        return None
    values = [v for _, v in known]
    low, high = min(values), max(values)
    span = (high - low) or abs(high) * 0.1 or 1.0
    low, high = low - span * 0.05, high + span * 0.05
    plot = WIDTH - LEFT - RIGHT
    step = plot / max(1, len(known) - 1)
    dots = []
    for i, (version, value) in enumerate(known):
        x = LEFT + (i * step if len(known) > 1 else plot / 2)
        y = HEIGHT - PAD_Y - (value - low) / (high - low) * (HEIGHT - 2 * PAD_Y)
        dots.append(
            {
                "x": round(x, 1),
                "y": round(y, 1),
                "version": version,
                "label": format(value, fmt) + unit,
            }
        )
    return {
        "title": title,
        "width": WIDTH,
        "height": HEIGHT,
        "path": " ".join(f"{d['x']},{d['y']}" for d in dots),
        "dots": dots if len(dots) <= 200 else [],  # beyond that the line says it all
        "top": format(high, fmt) + unit,
        "bottom": format(low, fmt) + unit,
        "first": known[0][0],
        "last": known[-1][0],
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "pad_y": PAD_Y,
        "summary": (
            f"{title} of {len(known)} versions, from {format(values[0], fmt)}{unit} "
            f"({known[0][0]}) to {format(values[-1], fmt)}{unit} ({known[-1][0]}); "
            f"lowest {format(min(values), fmt)}{unit}, highest {format(max(values), fmt)}{unit}"
        ),
    }


def dataset_charts(
    points: list[VersionPoint], field: str, title: str, fmt: str, unit: str = ""
) -> list[dict[str, Any]]:
    """One chart per dataset the figures were measured on: a series never mixes datasets."""
    datasets = dict.fromkeys(p.dataset_id for p in points if getattr(p, field) is not None)
    charts = []
    for dataset in datasets:
        series = [p for p in points if p.dataset_id == dataset]
        images = next((p.images for p in series if p.images is not None), None)
        count = f" ({images:,} images)" if images is not None else ""
        on = f"{title} on {dataset}{count}" if dataset else f"{title} (dataset not recorded)"
        chart = line_chart(series, field, on, fmt, unit)
        if chart:
            charts.append(chart)
    return charts


def heatmap(matrix: list[list[int]], classes: list[str]) -> dict[str, Any]:
    """Rows (true class) of cells (predicted class) with a colour level by share of the row."""
    rows = []
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        cells = [
            {
                "count": n,
                "level": min(HEAT_LEVELS - 1, round(n / total * (HEAT_LEVELS - 1))),
                "share": f"{n / total:.1%}",
                "diagonal": i == j,
            }
            for j, n in enumerate(row)
        ]
        rows.append({"label": classes[i] if i < len(classes) else str(i), "cells": cells})
    labels = [classes[j] if j < len(classes) else str(j) for j in range(len(matrix))]
    return {"rows": rows, "labels": labels}


def class_names(metrics: dict[str, Any]) -> list[str]:
    """The class names of a job's metrics (per_class rows), in matrix order."""
    return [str(c.get("class", i)) for i, c in enumerate(metrics.get("per_class") or [])]


def _p(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if value >= 1e-4 else f"{value:.1e}"


def check_cells(c: GateCheck) -> dict[str, str]:
    """One verdict row: baseline, candidate, delta, threshold, p-value, interval, verdict."""
    if c.name in ("latency", "p95_latency"):  # p95_latency: verdicts before non-inferiority
        interval = ""
        if c.ci_low is not None and c.ci_high is not None:
            interval = f"[{c.ci_low:+.1%}, {c.ci_high:+.1%}]"
        return {
            "name": c.name,
            "baseline": f"{c.baseline:.2f} ms",
            "candidate": f"{c.candidate:.2f} ms",
            "delta": f"{c.delta:+.1%}",
            "threshold": f"≤ +{c.threshold:.0%}",
            "p_value": "",
            "interval": interval,
            "verdict": c.verdict,
            "detail": c.detail,
        }
    interval = ""
    if c.ci_low is not None and c.ci_high is not None:
        interval = f"[{c.ci_low * 100:+.2f}, {c.ci_high * 100:+.2f}] pts"
    threshold = (
        f"p ≥ {c.threshold:g} if a drop"
        if c.name == "accuracy_significance"
        else f"≥ {c.threshold * 100:+.2f} pts"
    )
    return {
        "name": c.name,
        "baseline": f"{c.baseline * 100:.2f}%",
        "candidate": f"{c.candidate * 100:.2f}%",
        "delta": f"{c.delta * 100:+.2f} pts",
        "threshold": threshold,
        "p_value": _p(c.p_value),
        "interval": interval,
        "verdict": c.verdict,
        "detail": c.detail,
    }


FIRST = (
    "accuracy",
    "macro_f1",
    "macro_precision",
    "macro_recall",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "throughput_images_per_s",
)


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """The figures of a job, headline ones first (the matrix and per-class rows go elsewhere)."""
    shown = []
    order = [k for k in FIRST if k in metrics] + sorted(k for k in metrics if k not in FIRST)
    for key in order:
        value = metrics[key]
        if key in ("per_class", "confusion_matrix") or isinstance(value, dict | list):
            continue
        if isinstance(value, float):
            value = f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
        elif isinstance(value, int):
            value = f"{value:,}"
        shown.append((key, str(value)))
    return shown
