"""How often a gate passes candidates it should not, under the old rule and the new one.

Each scenario is simulated many times with a fixed seed through the project's own statistics
(domain.gates.stats, domain.gates.noninferiority, domain.gates.verdict):

- accuracy: a paired 2x2 table drawn with a given true difference (candidate - baseline) and
  discordant share psi (two similar models disagree on ~8% of Fashion-MNIST images);
- latency: per-round batch times of both versions on a shared, noisy machine: a common factor
  per round (both versions see it), 3% jitter per forward pass, and spikes (a forward pass now
  and then 2-4x slower, as on a busy 2-core box).

The old rule is the schema-1 gate: PASS when the point estimate is within the threshold (and,
with require_not_significant, no drop significant at two-sided 0.05), latency failing only
when the p95 ratio is above 1 + threshold AND its bootstrap interval is above 1. The new rule
is non-inferiority at one-sided alpha 0.025 (docs/gates.md). Run: python -m bench.gate_error_rates
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass

import numpy as np

from domain.gates.noninferiority import paired_ratio
from domain.gates.stats import PairedAccuracy, paired_accuracy, paired_latency
from domain.gates.verdict import accuracy_check, latency_check
from events.gates import GateThresholds

PSI = 0.08  # discordant share of two similar classifiers
BASE_ACCURACY = 0.90
NEW = GateThresholds()  # margin 1 point, 10% latency, one-sided alpha 0.025, 200 images


def simulate_table(n: int, delta: float, rng: np.random.Generator, psi: float = PSI):
    """Labels and both versions' predictions with true difference ``delta`` (candidate - base)."""
    only_c, only_b = (psi + delta) / 2, (psi - delta) / 2
    both = BASE_ACCURACY - only_b
    counts = rng.multinomial(n, [both, only_b, only_c, 1 - both - only_b - only_c])
    # Label 0 everywhere: a prediction of 0 is right, 1 is wrong.
    base = np.repeat([0, 0, 1, 1], counts)
    cand = np.repeat([0, 1, 0, 1], counts)
    return np.zeros(n, dtype=np.int64), base, cand


def old_accuracy_passes(acc: PairedAccuracy, margin: float, significance: bool) -> bool:
    """The schema-1 accuracy rule: point estimate within the margin (and no significant drop)."""
    ok = acc.delta >= -margin - 1e-12
    if significance:
        ok = ok and not (acc.delta < 0 and acc.p_value < 0.05)
    return ok


def accuracy_rates(n: int, delta: float, runs: int, seed: int = 0, significance: bool = False):
    """(old pass rate, new verdict counts) over ``runs`` simulated test sets."""
    rng = np.random.default_rng(seed)
    old, new = 0, Counter()
    for _ in range(runs):
        y, a, b = simulate_table(n, delta, rng)
        old += old_accuracy_passes(paired_accuracy(y, a, b, 0.95), 0.01, significance)
        acc = paired_accuracy(y, a, b, 1 - 2 * NEW.alpha)
        new[accuracy_check(NEW, acc).verdict] += 1
    return old / runs, new


def simulate_latency(rounds: int, ratio: float, rng: np.random.Generator, spike_p: float = 0.08):
    """Per-round ms per batch of both versions on a shared machine with spiky noise."""
    machine = rng.lognormal(0.0, 0.10, rounds)  # both versions of a round share it

    def one(scale: float) -> np.ndarray:
        jitter = rng.lognormal(0.0, 0.03, rounds)
        spikes = np.where(rng.random(rounds) < spike_p, rng.uniform(2.0, 4.0, rounds), 1.0)
        return 50.0 * scale * machine * jitter * spikes

    return one(1.0), one(ratio)


def old_latency_passes(a: np.ndarray, b: np.ndarray, threshold: float = 0.10) -> bool:
    """The schema-1 latency rule: fail only when the p95 ratio and its interval's low end say so."""
    lat = paired_latency(a, b, confidence=0.95, resamples=1000)
    return not (lat.ratio - 1 > threshold + 1e-12 and lat.ci_low > 1)


def latency_rates(rounds: int, ratio: float, runs: int, seed: int = 0):
    """(old pass rate, new verdict counts) over ``runs`` simulated latency runs."""
    rng = np.random.default_rng(seed)
    old, new = 0, Counter()
    for _ in range(runs):
        a, b = simulate_latency(rounds, ratio, rng)
        old += old_latency_passes(a, b)
        new[latency_check(NEW, paired_ratio(a, b, NEW.alpha), 64).verdict] += 1
    return old / runs, new


@dataclass(frozen=True)
class Row:
    scenario: str
    old_pass: float
    new: Counter
    runs: int

    def line(self) -> str:
        n = self.runs
        shares = ", ".join(f"{v} {self.new[v] / n:.1%}" for v in ("PASS", "INCONCLUSIVE", "FAIL"))
        return f"| {self.scenario} | {self.old_pass:.1%} | {shares} |"


def main() -> None:
    """Print the table docs/gates.md shows."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--latency-runs", type=int, default=500)
    args = ap.parse_args()
    r, lr = args.runs, args.latency_runs
    rows = []
    for n in (500, 2000, 10000):
        rows.append(Row(f"at the margin (-1.0 pts), {n:,} images", *accuracy_rates(n, -0.01, r), r))
    rows.append(Row("2 pts worse, 500 images", *accuracy_rates(500, -0.02, r), r))
    rows.append(Row("1.5 pts worse, 2,000 images", *accuracy_rates(2000, -0.015, r), r))
    rows.append(Row("equal (0 pts), 2,000 images", *accuracy_rates(2000, 0.0, r), r))
    rows.append(Row("equal (0 pts), 10,000 images", *accuracy_rates(10000, 0.0, r), r))
    rows.append(
        Row(
            "0.3 pts worse, 10,000 images, old with require_not_significant",
            *accuracy_rates(10000, -0.003, r, significance=True),
            r,
        )
    )
    for ratio in (1.3, 2.0, 1.1, 1.0):
        label = f"{ratio:g}x latency, 40 rounds, spiky noise"
        rows.append(Row(label, *latency_rates(40, ratio, lr), lr))
    print("| scenario | old rule: PASS | new rule: PASS, INCONCLUSIVE, FAIL |")
    print("|---|---|---|")
    for row in rows:
        print(row.line())


if __name__ == "__main__":
    main()
