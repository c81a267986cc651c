"""Statistics of a regression gate: paired accuracy and paired latency, numpy only.

Accuracy. Both versions predicted the same images, so the data are paired: per image, each
version is right or wrong. Only the discordant images (one right, the other wrong) carry
information about a difference, which is what McNemar's exact test uses: under "no
difference" each discordant image is equally likely to favour either version, so the count
favouring the baseline is Binomial(b + c, 1/2); the two-sided p-value is
min(1, 2 * P(X <= min(b, c))). It is exact at any sample size, where the chi-square version is
not for the few discordant pairs two similar models produce.

The interval of the accuracy difference is Newcombe's hybrid score interval for paired
proportions (Newcombe 1998, method 10, with the continuity-corrected correlation as in
Fagerland, Lydersen and Laake, "Statistical Analysis of Contingency Tables", ch. 8), not a
paired bootstrap: it is closed-form (so a verdict
is reproducible without a seed), keeps its coverage with few discordant pairs and near 100%
accuracy, where Wald intervals and percentile bootstraps of a rare discrete count collapse to
zero width, and it is what Fagerland, Lydersen and Laake (2013) recommend for this case.

Latency. The latencies come from one run that alternates the two versions batch by batch on
the same inputs (see ml/paired_latency.py), so batch i of each version saw the same machine
state. We compare the p95 of each version's per-batch latencies; the interval of the ratio
candidate/baseline comes from a paired bootstrap that resamples batch indices (the same
indices for both versions, keeping the pairing), seeded so a verdict is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from domain.errors import InvalidInput

BOOTSTRAP_RESAMPLES = 4000
LATENCY_QUANTILE = 95.0


@dataclass(frozen=True)
class PairedAccuracy:
    """Accuracy of two versions on the same images, their difference, test and interval."""

    images: int
    baseline_correct: int
    candidate_correct: int
    only_baseline_correct: int
    only_candidate_correct: int
    baseline_accuracy: float
    candidate_accuracy: float
    delta: float  # candidate - baseline; negative is a drop
    p_value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class PairedLatency:
    """p95 of per-batch latencies of both versions and the ratio candidate/baseline."""

    batches: int
    baseline_p95_ms: float
    candidate_p95_ms: float
    ratio: float
    ci_low: float
    ci_high: float


def mcnemar_exact_p(only_baseline: int, only_candidate: int) -> float:
    """Two-sided exact McNemar p-value from the two discordant counts (1.0 when none)."""
    if only_baseline < 0 or only_candidate < 0:
        raise InvalidInput("discordant counts must be non-negative")
    n = only_baseline + only_candidate
    if n == 0:
        return 1.0
    k = np.arange(min(only_baseline, only_candidate), dtype=np.float64)
    # log C(n, k) by the recurrence C(n, k+1) = C(n, k) (n-k)/(k+1), in log space so that
    # large n neither overflows nor underflows; then the pmf is C(n, k) / 2^n.
    log_comb = np.concatenate(([0.0], np.cumsum(np.log(n - k) - np.log(k + 1))))
    log_pmf = log_comb - n * math.log(2.0)
    top = log_pmf.max()
    tail = math.exp(top) * float(np.exp(log_pmf - top).sum())
    return min(1.0, 2.0 * tail)


def wilson_interval(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_paired_interval(
    both: int, only_first: int, only_second: int, neither: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's method-10 interval of p_first - p_second for a paired 2x2 table."""
    n = both + only_first + only_second + neither
    if n == 0:
        raise InvalidInput("no pairs to compare")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    first, second = both + only_first, both + only_second
    p1, p2 = first / n, second / n
    l1, u1 = wilson_interval(first, n, z)
    l2, u2 = wilson_interval(second, n, z)
    # The correlation of the two proportions, with Newcombe's continuity correction: a positive
    # cross-product is shrunk by n/2 (to no less than 0); a negative one is used as it is.
    marginals = first * (n - first) * second * (n - second)
    cross = both * neither - only_first * only_second
    cross = max(cross - n / 2, 0.0) if cross >= 0 else cross
    phi = 0.0 if marginals == 0 else cross / math.sqrt(marginals)
    theta = p1 - p2
    d_low = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    d_high = (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2
    return max(-1.0, theta - math.sqrt(max(d_low, 0.0))), min(
        1.0, theta + math.sqrt(max(d_high, 0.0))
    )


def paired_accuracy(
    labels, baseline_predictions, candidate_predictions, confidence: float = 0.95
) -> PairedAccuracy:
    """Compare two versions' predictions on the same labelled images."""
    y = np.asarray(labels)
    a = np.asarray(baseline_predictions)
    b = np.asarray(candidate_predictions)
    if y.ndim != 1 or a.shape != y.shape or b.shape != y.shape:
        raise InvalidInput(
            f"paired predictions must be equally long: {y.size} labels, "
            f"{a.size} baseline and {b.size} candidate predictions"
        )
    if y.size == 0:
        raise InvalidInput("no images to compare")
    ok_a, ok_b = a == y, b == y
    both = int(np.count_nonzero(ok_a & ok_b))
    only_a = int(np.count_nonzero(ok_a & ~ok_b))
    only_b = int(np.count_nonzero(~ok_a & ok_b))
    n = int(y.size)
    # Interval of candidate - baseline: the candidate is the "first" proportion.
    low, high = newcombe_paired_interval(
        both, only_b, only_a, n - both - only_a - only_b, confidence
    )
    return PairedAccuracy(
        images=n,
        baseline_correct=both + only_a,
        candidate_correct=both + only_b,
        only_baseline_correct=only_a,
        only_candidate_correct=only_b,
        baseline_accuracy=(both + only_a) / n,
        candidate_accuracy=(both + only_b) / n,
        delta=(only_b - only_a) / n,
        p_value=mcnemar_exact_p(only_a, only_b),
        ci_low=low,
        ci_high=high,
    )


def paired_latencies(baseline_ms, candidate_ms) -> tuple[np.ndarray, np.ndarray]:
    """Both versions' latencies as float arrays; InvalidInput unless equally long (at least 2),
    finite and positive."""
    a = np.asarray(baseline_ms, dtype=np.float64)
    b = np.asarray(candidate_ms, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise InvalidInput(
            f"paired latencies must be equally long: {a.size} baseline, {b.size} candidate"
        )
    if a.size < 2:
        raise InvalidInput(f"{a.size} latency pairs; at least 2 are needed")
    if not (np.isfinite(a).all() and np.isfinite(b).all()) or (a <= 0).any() or (b <= 0).any():
        raise InvalidInput("latencies must be finite and positive")
    return a, b


def paired_latency(
    baseline_ms,
    candidate_ms,
    *,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> PairedLatency:
    """p95 of each version's per-batch latencies and a paired bootstrap interval of the ratio."""
    a, b = paired_latencies(baseline_ms, candidate_ms)
    p_a = float(np.percentile(a, LATENCY_QUANTILE))
    p_b = float(np.percentile(b, LATENCY_QUANTILE))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(resamples, a.size))
    ratios = np.percentile(b[idx], LATENCY_QUANTILE, axis=1) / np.percentile(
        a[idx], LATENCY_QUANTILE, axis=1
    )
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return PairedLatency(
        batches=int(a.size),
        baseline_p95_ms=p_a,
        candidate_p95_ms=p_b,
        ratio=p_b / p_a,
        ci_low=float(low),
        ci_high=float(high),
    )
