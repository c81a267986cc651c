"""Always-valid sequential tests for online comparisons (shadow and canary), pure.

The verdicts of a shadow or a canary are looked at after every outcome, so a fixed-n p-value read
again and again would pass a bad candidate far more often than its nominal level. Here each check
is a pair of *betting e-processes* (a mixture SPRT): for a bounded per-request difference X with
mean mu and a boundary m,

    K_pass(t) = mean over lambda in GRID of prod_i (1 + lambda (X_i - m))   tests H0: mu <= m
    K_fail(t) = mean over lambda in GRID of prod_i (1 - lambda (X_i - m))   tests H0: mu >= m

Each product is a non-negative supermartingale under its null (lambda >= 0 and small enough that
every factor stays positive), and so is their average. By Ville's inequality the chance that one
*ever* reaches 1/alpha under its null is at most alpha, however often it is looked at and
whenever the looking stops. PASS is K_pass >= 1/alpha (non-inferior), FAIL is K_fail >= 1/alpha;
each wrong call has probability at most alpha. The products depend only on the counts of each
value of X, so a verdict is computed from counts (order does not matter for fixed lambdas).

INCONCLUSIVE says how many more labelled requests would decide it at the observed rates: the
growth per request of the best lambda on the observed frequencies, against what is still missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
# Fractions of the largest allowed bet; a mixture over them adapts to the variance (a small
# discordance wants a large bet). Averaging over G bets costs log(G) of evidence.
GRID = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
MAX_NEEDED = 1_000_000  # beyond this the check "cannot be decided cheaply"


@dataclass(frozen=True)
class Decision:
    """One check's state: the outcome, the observed mean, a (1 - 2 alpha) confidence-sequence
    interval, both e-values and how many more observations would decide it (None: not cheaply)."""

    outcome: str
    n: int
    mean: float | None
    lower: float | None
    upper: float | None
    e_pass: float
    e_fail: float
    needed: int | None


def log_factors(values, m: float, sign: int, lo: float, hi: float) -> list[list[float]]:
    """log(1 + sign * lambda_j * (x - m)) for each value x (rows) and bet j of GRID (columns)."""
    span = (m - lo) if sign > 0 else (hi - m)
    if span <= 0:
        return [[0.0] * len(GRID) for _ in values]
    return [[math.log1p(sign * (c / span) * (x - m)) for c in GRID] for x in values]


def _log_e(counts: dict[float, int], m: float, sign: int, lo: float, hi: float) -> float:
    """log of the mixture e-value betting that the mean is above m (sign 1) or below it (-1)."""
    values = list(counts)
    factors = log_factors(values, m, sign, lo, hi)
    logs = [
        sum(counts[x] * f[j] for x, f in zip(values, factors, strict=True))
        for j in range(len(GRID))
    ]
    top = max(logs)
    return top + math.log(sum(math.exp(v - top) for v in logs) / len(logs))


def _growth(freq: dict[float, float], m: float, sign: int, lo: float, hi: float) -> float:
    """Expected log growth per observation of the best bet of the grid at these frequencies."""
    span = (m - lo) if sign > 0 else (hi - m)
    if span <= 0:
        return 0.0
    return max(
        sum(p * math.log1p(sign * (c / span) * (x - m)) for x, p in freq.items()) for c in GRID
    )


def decide(
    counts: dict[float, int],
    boundary: float,
    alpha: float,
    lo: float,
    hi: float,
    *,
    min_n: int = 0,
) -> Decision:
    """PASS when the mean of X (values in [lo, hi]) is shown above ``boundary``, FAIL when shown
    below, else INCONCLUSIVE; each wrong call at most ``alpha`` under continuous monitoring.

    ``counts`` maps each observed value to how many times it was seen; ``min_n`` holds a
    decision back until that many observations (it only lowers the error rates).
    """
    if not 0 < alpha < 0.5:
        raise ValueError("alpha must be in (0, 0.5)")
    n = sum(counts.values())
    threshold = math.log(1 / alpha)
    lp = _log_e(counts, boundary, 1, lo, hi)
    lf = _log_e(counts, boundary, -1, lo, hi)
    mean = sum(x * c for x, c in counts.items()) / n if n else None
    lower, upper = _interval(counts, alpha, lo, hi) if n else (None, None)
    e_pass, e_fail = math.exp(min(lp, 700)), math.exp(min(lf, 700))
    if n >= min_n and lp >= threshold:
        return Decision(PASS, n, mean, lower, upper, e_pass, e_fail, 0)
    if n >= min_n and lf >= threshold:
        return Decision(FAIL, n, mean, lower, upper, e_pass, e_fail, 0)
    needed = _needed(counts, n, boundary, alpha, lo, hi, min_n, mean)
    return Decision(INCONCLUSIVE, n, mean, lower, upper, e_pass, e_fail, needed)


def _needed(counts, n, boundary, alpha, lo, hi, min_n, mean) -> int | None:
    """More observations that would decide it if the observed frequencies held (None: not cheaply)."""
    if not n or mean is None or mean == boundary:
        return None
    sign = 1 if mean > boundary else -1
    freq = {x: c / n for x, c in counts.items()}
    g = _growth(freq, boundary, sign, lo, hi)
    if g <= 0:
        return None
    # The mixture is at least the best bet's product over G: N g - log G reaches log(1/alpha).
    more = (math.log(1 / alpha) + math.log(len(GRID))) / g - n
    more = max(more, min_n - n, 1)
    return None if more > MAX_NEEDED else math.ceil(more)


def _interval(counts, alpha, lo, hi, steps: int = 400) -> tuple[float, float]:
    """The boundaries m that neither test rejects: a (1 - 2 alpha) confidence sequence's interval."""
    threshold = math.log(1 / alpha)
    inside = []
    for i in range(1, steps):  # at the very edges a bet has no room: neither test can reject
        m = lo + (hi - lo) * i / steps
        if _log_e(counts, m, 1, lo, hi) < threshold and _log_e(counts, m, -1, lo, hi) < threshold:
            inside.append(m)
    if not inside:  # all mass on one value at the edge: the interval is that value
        mean = sum(x * c for x, c in counts.items()) / sum(counts.values())
        return mean, mean
    return inside[0], inside[-1]


def accuracy_noninferiority(
    cand_only: int,
    prod_only: int,
    both_or_neither: int,
    margin: float,
    alpha: float,
    min_n: int = 0,
) -> Decision:
    """Paired accuracy (McNemar-style): X = candidate right - prod right per labelled request;
    PASS when the difference is shown above -margin, FAIL when shown below."""
    counts = {1.0: cand_only, -1.0: prod_only, 0.0: both_or_neither}
    return decide(counts, -margin, alpha, -1.0, 1.0, min_n=min_n)


def error_noninferiority(
    cand_only: int, prod_only: int, same: int, margin: float, alpha: float, min_n: int = 0
) -> Decision:
    """Paired errors: X = prod failed - candidate failed; PASS when the candidate's error rate is
    shown below prod's + margin."""
    counts = {1.0: prod_only, -1.0: cand_only, 0.0: same}
    return decide(counts, -margin, alpha, -1.0, 1.0, min_n=min_n)


def latency_noninferiority(slower: int, not_slower: int, alpha: float, min_n: int = 0) -> Decision:
    """Paired latency ratio: ``slower`` counts requests where the candidate took more than
    (1 + threshold) x prod's time. PASS when that share is shown below 1/2 (the median paired
    ratio is below 1 + threshold), FAIL when shown above."""
    counts = {-1.0: slower, 0.0: not_slower}  # X = -[slower]; mean > -1/2 <=> share < 1/2
    return decide(counts, -0.5, alpha, -1.0, 0.0, min_n=min_n)


def combine(decisions: list[Decision]) -> str:
    """FAIL if any check failed, PASS if all passed, else INCONCLUSIVE."""
    outcomes = [d.outcome for d in decisions]
    if FAIL in outcomes:
        return FAIL
    if outcomes and all(o == PASS for o in outcomes):
        return PASS
    return INCONCLUSIVE
