"""Evaluation metrics as pure functions over predictions, labels and batch timings."""

from __future__ import annotations

import math
from typing import Any


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of already sorted values."""
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return float(sorted_values[lo])
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo))


def confusion_matrix(
    predictions: list[int], labels: list[int], num_classes: int
) -> list[list[int]]:
    """rows: true class, columns: predicted class."""
    matrix = [[0] * num_classes for _ in range(num_classes)]
    for p, t in zip(predictions, labels, strict=True):
        matrix[t][p] += 1
    return matrix


def classification_metrics(
    predictions: list[int],
    labels: list[int],
    num_classes: int,
    class_names: list[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro averages and the confusion matrix."""
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if not labels:
        raise ValueError("no predictions to evaluate")
    matrix = confusion_matrix(predictions, labels, num_classes)
    correct = sum(matrix[i][i] for i in range(num_classes))
    per_class = []
    for c in range(num_classes):
        tp = matrix[c][c]
        predicted = sum(matrix[r][c] for r in range(num_classes))
        support = sum(matrix[c])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        name = class_names[c] if class_names and c < len(class_names) else str(c)
        per_class.append(
            {
                "class": name,
                "precision": round(precision, 6),
                "recall": round(recall, 6),
                "f1": round(f1, 6),
                "support": support,
            }
        )
    present = [p for p in per_class if p["support"]]
    return {
        "accuracy": round(correct / len(labels), 6),
        "macro_precision": round(sum(p["precision"] for p in present) / len(present), 6),
        "macro_recall": round(sum(p["recall"] for p in present) / len(present), 6),
        "macro_f1": round(sum(p["f1"] for p in present) / len(present), 6),
        "per_class": per_class,
        "confusion_matrix": matrix,
    }


def latency_metrics(batch_latencies_ms: list[float], batch_sizes: list[int]) -> dict[str, Any]:
    """p50/p95/p99 per batch, and per sample (each sample gets its batch's time / batch size)."""
    if len(batch_latencies_ms) != len(batch_sizes):
        raise ValueError("one batch size per batch latency is needed")
    per_batch = sorted(batch_latencies_ms)
    per_sample: list[float] = []
    for lat, size in zip(batch_latencies_ms, batch_sizes, strict=True):
        per_sample.extend([lat / size] * size)
    per_sample.sort()
    compute_s = sum(batch_latencies_ms) / 1000.0
    images = sum(batch_sizes)
    return {
        "latency_p50_ms": round(percentile(per_batch, 50), 4),
        "latency_p95_ms": round(percentile(per_batch, 95), 4),
        "latency_p99_ms": round(percentile(per_batch, 99), 4),
        "sample_latency_p50_ms": round(percentile(per_sample, 50), 4),
        "sample_latency_p95_ms": round(percentile(per_sample, 95), 4),
        "sample_latency_p99_ms": round(percentile(per_sample, 99), 4),
        "throughput_images_per_s": round(images / compute_s, 1) if compute_s else None,
        "batches": len(batch_sizes),
    }


def evaluation_metrics(
    predictions: list[int],
    labels: list[int],
    batch_latencies_ms: list[float],
    batch_sizes: list[int],
    *,
    num_classes: int,
    class_names: list[str] | None,
    wall_seconds: float,
) -> dict[str, Any]:
    """Everything EvaluationRecorded carries about one batch run."""
    metrics = classification_metrics(predictions, labels, num_classes, class_names)
    metrics.update(latency_metrics(batch_latencies_ms, batch_sizes))
    metrics["images"] = len(labels)
    metrics["wall_seconds"] = round(wall_seconds, 3)
    metrics["wall_images_per_s"] = (
        round(len(labels) / wall_seconds, 1) if wall_seconds > 0 else None
    )
    # The original platform's name for throughput.
    metrics["throughput_qps"] = metrics["throughput_images_per_s"]
    return metrics
