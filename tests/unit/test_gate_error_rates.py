"""The gate's error rates over many simulated runs (fixed seeds): the tests that would have
caught the old rules. Each scenario runs both rules so the test shows what it guards against;
bench/gate_error_rates.py prints the full table docs/gates.md shows."""

from __future__ import annotations

import math

import pytest

from bench.gate_error_rates import NEW, accuracy_rates, latency_rates
from domain.gates.noninferiority import images_formula, sign_test_rank
from domain.gates.stats import paired_accuracy


def test_a_candidate_exactly_at_the_margin_passes_at_most_alpha() -> None:
    old_pass, new = accuracy_rates(2000, -0.01, runs=1000, seed=11)
    # The old rule compared the point estimate with the threshold: a coin flip.
    assert 0.4 < old_pass < 0.6
    # Non-inferiority at one-sided 0.025 (binomial sd of the rate over 1,000 runs: 0.005).
    assert new["PASS"] / 1000 <= NEW.alpha + 0.015
    assert new["INCONCLUSIVE"] / 1000 > 0.85


def test_a_candidate_one_and_a_half_points_worse_on_2000_images_does_not_pass() -> None:
    old_pass, new = accuracy_rates(2000, -0.015, runs=1000, seed=12)
    assert old_pass > 0.12  # ~22%: the old rule let it through about one time in five
    assert new["PASS"] / 1000 <= 0.01  # ~0.3%: shown within 1 point only by bad luck
    assert new["FAIL"] > 0  # sometimes proven worse than the margin; else INCONCLUSIVE


def test_a_candidate_30_percent_slower_under_spiky_timing_noise_fails() -> None:
    old_pass, new = latency_rates(40, 1.3, runs=300, seed=13)
    # The old rule: p95 of 40 batch times, failing only when a rise above 1 was proven.
    assert old_pass > 0.5
    assert new["PASS"] == 0
    assert new["FAIL"] / 300 >= 0.95


def test_an_equal_candidate_passes_with_enough_evidence() -> None:
    # The price of the error rates above, stated in docs/gates.md: enough images and rounds.
    _, acc = accuracy_rates(10_000, 0.0, runs=300, seed=14)
    assert acc["PASS"] / 300 >= 0.85 and acc["FAIL"] == 0
    _, lat = latency_rates(40, 1.0, runs=300, seed=15)
    assert lat["PASS"] / 300 >= 0.95 and lat["FAIL"] == 0


def test_the_sample_size_is_the_mcnemar_non_inferiority_formula() -> None:
    # 2,000 images, 100 discordant (60 for the baseline, 40 for the candidate): delta -1 point.
    labels = [0] * 2000
    base = [0] * 60 + [1] * 40 + [0] * 1900
    cand = [1] * 60 + [0] * 1940
    acc = paired_accuracy(labels, base, cand, confidence=0.95)
    psi, delta, margin = 0.05, -0.01, 0.02
    z_a, z_b = 1.959964, 0.841621
    expected = (z_a + z_b) ** 2 * (psi - delta**2) / (delta + margin) ** 2
    assert (acc.only_baseline_correct, acc.only_candidate_correct) == (60, 40)
    assert images_formula(acc, margin, 0.025) == math.ceil(expected) == 3917
    assert images_formula(acc, 0.01, 0.025) is None  # at the margin: no n decides it


@pytest.mark.parametrize(
    ("n", "alpha", "k"),
    [(4, 0.025, 0), (5, 0.025, 0), (6, 0.025, 1), (8, 0.025, 1), (20, 0.025, 6), (40, 0.025, 14)],
)
def test_sign_test_ranks_match_the_binomial_table(n: int, alpha: float, k: int) -> None:
    # The largest k with P(Bin(n, 1/2) <= k - 1) <= alpha; e.g. n = 20: P(<= 5) = 0.0207.
    assert sign_test_rank(n, alpha) == k
    if k:
        assert sum(math.comb(n, i) for i in range(k)) / 2**n <= alpha
    assert sum(math.comb(n, i) for i in range(k + 1)) / 2**n > alpha
