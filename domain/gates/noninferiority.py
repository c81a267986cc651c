"""Non-inferiority decisions of a gate: three outcomes, and the evidence an undecided one needs.

A gate asks "is the candidate at most a margin worse than the baseline?", not "is it
significantly worse?". The candidate PASSES when the one-sided (1 - alpha) bound of the paired
difference clears the margin, FAILS when the other bound is past it, and is INCONCLUSIVE in
between. Under this rule a candidate exactly at the margin passes with probability at most
alpha, whatever the test set's size, and a larger test set only makes the answer more decided.

Accuracy: Newcombe's paired interval (domain.gates.stats) at confidence 1 - 2 alpha. For an
undecided one, the total number of images that would decide it with power 1 - beta if the
observed figures held is the McNemar non-inferiority sample size
    n = (z[1-alpha] + z[1-beta])^2 * (psi - delta^2) / (delta + margin)^2,
psi the discordant share, delta the observed difference (candidate - baseline).

Latency: one ratio candidate/baseline per round (both versions timed back to back on the same
batch, the order alternating ABBA so each goes first equally often); the statistic is the
median ratio and its interval the distribution-free sign-test interval (order statistics of
the ratios), so a few slow forward passes (a busy machine) move neither the estimate nor the
interval much. The same three outcomes against 1 + threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from domain.gates.stats import PairedAccuracy, newcombe_paired_interval, paired_latencies

POWER = 0.8
# Beyond this many times the images (or rounds) already used, a gate cannot be decided cheaply.
CHEAP_FACTOR = 20
MAX_ROUNDS = 100_000


def z(q: float) -> float:
    """The standard normal quantile."""
    return NormalDist().inv_cdf(q)


def outcome(low: float, high: float, limit: float, higher_is_better: bool) -> str:
    """PASS, FAIL or INCONCLUSIVE of an interval [low, high] against a limit."""
    if higher_is_better:
        return "PASS" if low > limit else "FAIL" if high < limit else "INCONCLUSIVE"
    return "PASS" if high < limit else "FAIL" if low > limit else "INCONCLUSIVE"


def accuracy_outcome(acc: PairedAccuracy, margin: float) -> str:
    """Non-inferiority of accuracy: ``acc``'s interval (at 1 - 2 alpha) against -margin."""
    return outcome(acc.ci_low, acc.ci_high, -margin, higher_is_better=True)


def images_formula(acc: PairedAccuracy, margin: float, alpha: float, power: float = POWER):
    """The McNemar non-inferiority sample size (total images), None when delta = -margin."""
    n = acc.images
    psi = (acc.only_baseline_correct + acc.only_candidate_correct) / n
    gap = acc.delta + margin
    if abs(gap) < 1e-12:
        return None
    var = max(psi - acc.delta**2, 1 / n)  # at least one discordant image's worth of spread
    return math.ceil((z(1 - alpha) + z(power)) ** 2 * var / gap**2)


def _decides(acc: PairedAccuracy, total: int, margin: float, alpha: float) -> bool:
    """Whether the same table scaled to ``total`` images decides (Newcombe at 1 - 2 alpha)."""
    f = total / acc.images
    b = round(acc.only_baseline_correct * f)
    c = round(acc.only_candidate_correct * f)
    both = round((acc.baseline_correct - acc.only_baseline_correct) * f)
    neither = max(total - both - b - c, 0)
    low, high = newcombe_paired_interval(both, c, b, neither, 1 - 2 * alpha)
    return outcome(low, high, -margin, higher_is_better=True) != "INCONCLUSIVE"


def images_to_decide(acc: PairedAccuracy, margin: float, alpha: float) -> tuple[int | None, int]:
    """More labelled images that would likely decide an INCONCLUSIVE accuracy check, and the
    total the estimate rests on; (None, total) when that is not cheap (0 total: never)."""
    n = acc.images
    total = images_formula(acc, margin, alpha)
    if total is None:
        return None, 0
    total = max(total, n + 1)
    # The formula is a normal approximation: make sure the interval itself would decide.
    while total <= CHEAP_FACTOR * n and not _decides(acc, total, margin, alpha):
        total = math.ceil(total * 1.25)
    if total > CHEAP_FACTOR * n:
        return None, total
    return total - n, total


@dataclass(frozen=True)
class PairedRatio:
    """Per-round latency ratios candidate/baseline: their median and sign-test interval."""

    rounds: int
    baseline_median_ms: float
    candidate_median_ms: float
    baseline_p95_ms: float
    candidate_p95_ms: float
    ratio: float
    ci_low: float
    ci_high: float
    # False when too few rounds for any interval at this alpha (then [min, max] is shown).
    decidable: bool
    ratios: tuple[float, ...]


def sign_test_rank(n: int, alpha: float) -> int:
    """The largest k with P(Binomial(n, 1/2) <= k - 1) <= alpha (0 when there is none): the
    order statistics k and n + 1 - k bound the median at one-sided level alpha each."""
    total, cdf, k = 2**n, 0, 0
    for i in range(n + 1):
        cdf += math.comb(n, i)
        if cdf / total > alpha:
            break
        k = i + 1
    return min(k, n // 2)


def paired_ratio(baseline_ms, candidate_ms, alpha: float) -> PairedRatio:
    """Median of the per-round ratios candidate/baseline and its 1 - 2 alpha sign-test interval."""
    a, b = paired_latencies(baseline_ms, candidate_ms)
    r = np.sort(b / a)
    k = sign_test_rank(r.size, alpha)
    low, high = (r[k - 1], r[r.size - k]) if k else (r[0], r[-1])
    return PairedRatio(
        rounds=int(r.size),
        baseline_median_ms=float(np.median(a)),
        candidate_median_ms=float(np.median(b)),
        baseline_p95_ms=float(np.percentile(a, 95)),
        candidate_p95_ms=float(np.percentile(b, 95)),
        ratio=float(np.median(r)),
        ci_low=float(low),
        ci_high=float(high),
        decidable=k > 0,
        ratios=tuple(float(x) for x in r),
    )


def latency_outcome(lat: PairedRatio, threshold: float) -> str:
    """PASS, FAIL or INCONCLUSIVE of the ratio's interval against 1 + threshold."""
    if not lat.decidable:
        return "INCONCLUSIVE"
    return outcome(lat.ci_low, lat.ci_high, 1 + threshold, higher_is_better=False)


def rounds_to_decide(lat: PairedRatio, threshold: float, alpha: float) -> int | None:
    """Total rounds that would likely decide an INCONCLUSIVE latency check (None: not cheaply).

    Normal approximation on the log ratios with the sign test's efficiency (pi / 2), the spread
    from their median absolute deviation: n = pi/2 (z[1-alpha] + z[1-beta])^2 s^2 / d^2.
    """
    logs = np.log(np.asarray(lat.ratios))
    centre = float(np.median(logs))
    gap = centre - math.log1p(threshold)
    floor = math.ceil(math.log2(1 / alpha))  # fewer rounds never reach alpha
    if abs(gap) < 1e-9:
        return None
    spread = 1.4826 * float(np.median(np.abs(logs - centre))) or 1e-3
    total = math.ceil(math.pi / 2 * (z(1 - alpha) + z(POWER)) ** 2 * spread**2 / gap**2)
    total = max(total, floor, lat.rounds + 2)
    if total > max(CHEAP_FACTOR * lat.rounds, 1000) or total > MAX_ROUNDS:
        return None
    return total + total % 2  # ABBA: an even number keeps both orders equally often
