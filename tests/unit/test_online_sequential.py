"""The sequential tests of shadow and canary: error rates under continuous monitoring (simulated,
fixed seeds) and power on a clearly worse candidate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from domain.online import sequential as sq

ALPHA = 0.05
MARGIN = 0.01


def _paths(rng, probs: dict[float, float], runs: int, steps: int) -> tuple[list[float], np.ndarray]:
    """Cumulative counts of each value after every observation: [runs, steps, values]."""
    values = list(probs)
    draws = rng.choice(len(values), size=(runs, steps), p=list(probs.values()))
    onehot = np.eye(len(values))[draws]
    return values, onehot.cumsum(axis=1)


def _log_e_path(values, cum, boundary, sign, lo, hi) -> np.ndarray:
    """The module's mixture e-process after every observation (same factors as ``decide``)."""
    factors = np.array(sq.log_factors(values, boundary, sign, lo, hi))  # [values, bets]
    logs = cum @ factors  # [runs, steps, bets]
    top = logs.max(axis=-1, keepdims=True)
    return (top + np.log(np.exp(logs - top).mean(axis=-1, keepdims=True)))[..., 0]


def _paired(delta: float, discordant: float) -> dict[float, float]:
    """Candidate-minus-prod correctness per labelled request: +1, -1 or 0."""
    return {1.0: (discordant + delta) / 2, -1.0: (discordant - delta) / 2, 0.0: 1 - discordant}


def test_accuracy_type_one_error_under_continuous_monitoring_at_most_alpha() -> None:
    # A candidate exactly at the margin: both nulls hold, so any verdict at all is an error.
    rng = np.random.default_rng(20240)
    values, cum = _paths(rng, _paired(-MARGIN, 0.08), runs=400, steps=5000)
    threshold = math.log(1 / ALPHA)
    passes = (_log_e_path(values, cum, -MARGIN, 1, -1, 1) >= threshold).any(axis=1).mean()
    fails = (_log_e_path(values, cum, -MARGIN, -1, -1, 1) >= threshold).any(axis=1).mean()
    assert passes <= ALPHA
    assert fails <= ALPHA


def test_a_candidate_worse_than_the_margin_passes_at_most_alpha_looking_every_request() -> None:
    rng = np.random.default_rng(7)
    values, cum = _paths(rng, _paired(-0.015, 0.10), runs=400, steps=5000)
    e = _log_e_path(values, cum, -MARGIN, 1, -1, 1)
    assert (e >= math.log(1 / ALPHA)).any(axis=1).mean() <= ALPHA


def test_three_points_worse_fails_within_six_thousand_labelled_requests() -> None:
    rng = np.random.default_rng(11)
    values, cum = _paths(rng, _paired(-0.03, 0.10), runs=200, steps=6000)
    failed = (_log_e_path(values, cum, -MARGIN, -1, -1, 1) >= math.log(1 / ALPHA)).any(axis=1)
    assert failed.mean() >= 0.9


def test_an_equally_good_candidate_passes_with_a_two_point_margin() -> None:
    rng = np.random.default_rng(12)
    values, cum = _paths(rng, _paired(0.0, 0.06), runs=200, steps=6000)
    passed = (_log_e_path(values, cum, -0.02, 1, -1, 1) >= math.log(1 / ALPHA)).any(axis=1)
    assert passed.mean() >= 0.9


def test_decide_agrees_with_the_path_and_states_the_outcome() -> None:
    rng = np.random.default_rng(3)
    values, cum = _paths(rng, _paired(-0.03, 0.10), runs=1, steps=4000)
    counts = dict(zip(values, cum[0, -1].astype(int).tolist(), strict=True))
    d = sq.decide(counts, -MARGIN, ALPHA, -1, 1)
    path = _log_e_path(values, cum, -MARGIN, -1, -1, 1)[0, -1]
    assert math.isclose(math.log(d.e_fail), path, rel_tol=1e-9)
    assert d.n == 4000 and d.lower is not None and d.lower <= d.mean <= d.upper


def test_inconclusive_names_how_many_more_and_that_many_more_decides() -> None:
    d = sq.accuracy_noninferiority(30, 45, 925, MARGIN, ALPHA)  # 1,000 pairs, 1.5 points worse
    assert d.outcome == sq.INCONCLUSIVE and d.needed is not None and d.needed > 0
    total = 1000 + d.needed
    scale = total / 1000
    later = sq.accuracy_noninferiority(
        round(30 * scale), round(45 * scale), round(925 * scale), MARGIN, ALPHA
    )
    assert later.outcome == sq.FAIL


def test_no_difference_at_the_margin_cannot_be_decided_cheaply() -> None:
    d = sq.accuracy_noninferiority(40, 50, 910, MARGIN, ALPHA)  # exactly -1 point
    assert d.outcome == sq.INCONCLUSIVE and d.needed is None


def test_min_n_holds_a_verdict_back() -> None:
    assert sq.accuracy_noninferiority(0, 200, 0, MARGIN, ALPHA).outcome == sq.FAIL
    held = sq.accuracy_noninferiority(0, 200, 0, MARGIN, ALPHA, min_n=500)
    assert held.outcome == sq.INCONCLUSIVE and held.needed == 300


def test_latency_and_error_checks() -> None:
    assert sq.latency_noninferiority(slower=300, not_slower=100, alpha=ALPHA).outcome == sq.FAIL
    assert sq.latency_noninferiority(slower=100, not_slower=300, alpha=ALPHA).outcome == sq.PASS
    assert sq.error_noninferiority(80, 0, 920, 0.01, ALPHA).outcome == sq.FAIL
    assert sq.error_noninferiority(0, 0, 2000, 0.01, ALPHA).outcome == sq.PASS


def test_latency_type_one_error_at_a_median_ratio_of_exactly_the_threshold() -> None:
    rng = np.random.default_rng(5)
    values, cum = _paths(rng, {-1.0: 0.5, 0.0: 0.5}, runs=400, steps=3000)
    threshold = math.log(1 / ALPHA)
    for sign in (1, -1):
        e = _log_e_path(values, cum, -0.5, sign, -1, 0)
        assert (e >= threshold).any(axis=1).mean() <= ALPHA


def test_combine_and_bad_alpha() -> None:
    d = sq.accuracy_noninferiority(0, 0, 0, MARGIN, ALPHA)
    assert d.outcome == sq.INCONCLUSIVE and d.needed is None and d.mean is None
    assert sq.combine([]) == sq.INCONCLUSIVE
    fail = sq.accuracy_noninferiority(0, 200, 0, MARGIN, ALPHA)
    ok = sq.error_noninferiority(0, 0, 2000, 0.01, ALPHA)
    assert sq.combine([ok, fail]) == sq.FAIL and sq.combine([ok, ok]) == sq.PASS
    with pytest.raises(ValueError):
        sq.decide({1.0: 1}, 0.0, 0.7, -1, 1)
