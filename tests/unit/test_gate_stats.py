"""Gate statistics: McNemar's exact test, Newcombe's paired interval, paired latency bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from domain.errors import InvalidInput
from domain.gates.stats import (
    mcnemar_exact_p,
    newcombe_paired_interval,
    paired_accuracy,
    paired_latency,
)


@pytest.mark.parametrize(
    ("b", "c"),
    [(1, 0), (12, 2), (2, 12), (5, 5), (3, 17), (100, 130), (0, 40), (2000, 2100), (40000, 40500)],
)
def test_mcnemar_matches_scipy_binomtest(b: int, c: int) -> None:
    expected = binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
    assert mcnemar_exact_p(b, c) == pytest.approx(expected, rel=1e-8, abs=1e-300)


def test_mcnemar_without_discordant_pairs_is_one() -> None:
    assert mcnemar_exact_p(0, 0) == 1.0


def _labels(n: int = 10_000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 10, n)


def _wrong_on(labels: np.ndarray, idx: slice | np.ndarray) -> np.ndarray:
    preds = labels.copy()
    preds[idx] = (preds[idx] + 1) % 10
    return preds


def test_same_version_against_itself_has_delta_zero_and_p_one() -> None:
    y = _labels()
    preds = _wrong_on(y, slice(0, 300))
    r = paired_accuracy(y, preds, preds)
    assert r.delta == 0.0
    assert r.p_value == 1.0
    assert r.only_baseline_correct == r.only_candidate_correct == 0
    assert r.ci_low <= 0.0 <= r.ci_high
    assert r.baseline_accuracy == r.candidate_accuracy == pytest.approx(0.97)


def test_a_three_point_drop_is_significant_and_its_interval_excludes_zero() -> None:
    y = _labels()
    baseline = _wrong_on(y, slice(0, 100))
    candidate = _wrong_on(y, slice(0, 400))
    r = paired_accuracy(y, baseline, candidate)
    assert r.delta == pytest.approx(-0.03)
    assert (r.only_baseline_correct, r.only_candidate_correct) == (300, 0)
    assert r.p_value < 1e-50
    assert r.ci_low < r.delta < r.ci_high < 0


def test_swapped_errors_of_equal_count_are_not_significant() -> None:
    y = _labels()
    r = paired_accuracy(y, _wrong_on(y, slice(0, 50)), _wrong_on(y, slice(50, 100)))
    assert r.delta == 0.0
    assert r.p_value == 1.0
    assert r.ci_low < 0 < r.ci_high


def test_improvement_has_positive_delta() -> None:
    y = _labels()
    r = paired_accuracy(y, _wrong_on(y, slice(0, 200)), _wrong_on(y, slice(0, 100)))
    assert r.delta == pytest.approx(0.01)
    assert r.p_value < 1e-20
    assert 0 < r.ci_low < r.delta < r.ci_high


def test_unequal_inputs_are_refused() -> None:
    y = _labels(10)
    with pytest.raises(InvalidInput, match="equally long"):
        paired_accuracy(y, y, y[:9])
    with pytest.raises(InvalidInput, match="no images"):
        paired_accuracy([], [], [])


def test_newcombe_interval_covers_about_95_percent() -> None:
    # Coverage of the true paired difference over simulated tables: a sign or formula error
    # shows up as coverage far from the nominal 95%.
    rng = np.random.default_rng(7)
    probs = [0.80, 0.06, 0.03, 0.11]  # both right, only first, only second, neither
    true_delta = probs[1] - probs[2]
    tables = rng.multinomial(200, probs, size=2000)
    covered = 0
    for t in tables:
        low, high = newcombe_paired_interval(*(int(x) for x in t))
        covered += low <= true_delta <= high
    assert 0.93 <= covered / len(tables) <= 0.975


def test_newcombe_interval_keeps_width_without_discordant_pairs() -> None:
    low, high = newcombe_paired_interval(1000, 0, 0, 0)
    assert low < 0 < high  # a Wald interval would collapse to [0, 0] here
    assert high - low < 0.01


def test_latency_of_identical_runs_has_ratio_one() -> None:
    a = np.random.default_rng(1).gamma(20, 0.5, 100)
    r = paired_latency(a, a)
    assert r.ratio == 1.0
    assert r.ci_low == r.ci_high == 1.0
    assert r.baseline_p95_ms == pytest.approx(np.percentile(a, 95))


def test_latency_ratio_and_bootstrap_interval() -> None:
    rng = np.random.default_rng(2)
    a = rng.gamma(20, 0.5, 200)
    b = a * 1.3 + rng.normal(0, 0.2, 200).clip(-1, 1)
    r = paired_latency(a, b)
    assert r.ratio == pytest.approx(np.percentile(b, 95) / np.percentile(a, 95))
    assert r.ci_low < r.ratio < r.ci_high
    assert r.ci_low > 1.15 and r.ci_high < 1.45
    assert paired_latency(a, b) == r  # seeded: reproducible
    assert paired_latency(a, b, seed=3) != r


def test_pure_scaling_gives_exact_ratio() -> None:
    a = np.random.default_rng(4).gamma(20, 0.5, 50)
    r = paired_latency(a, a * 2)
    assert r.ratio == pytest.approx(2.0)
    assert r.ci_low == pytest.approx(2.0) and r.ci_high == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        ([1.0, 2.0], [1.0], "equally long"),
        ([1.0], [1.0], "at least 2"),
        ([1.0, 0.0], [1.0, 1.0], "finite and positive"),
        ([1.0, float("nan")], [1.0, 1.0], "finite and positive"),
    ],
)
def test_bad_latencies_are_refused(a, b, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        paired_latency(a, b)
