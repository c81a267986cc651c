"""Paired latency runs: alternation order, same inputs for both models, real zoo models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from domain.gates.noninferiority import paired_ratio
from events.registry import ArtifactMetadata
from ml.batcher import DynamicBatcher
from ml.paired_latency import batches_of, measure_paired_latency, round_orders
from ml.serving import LoadedModel, VersionRef
from ml.zoo import build_model


class Spy:
    """Records which batch each forward saw, then runs the wrapped model (or returns zeros)."""

    def __init__(self, name: str, calls: list, inner=None) -> None:
        self.name, self.calls, self.inner = name, calls, inner

    def forward(self, images: np.ndarray) -> np.ndarray:
        self.calls.append((self.name, images))
        if self.inner is not None:
            return self.inner.forward(images)
        return np.zeros((len(images), 10), dtype=np.float32)


def _images(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def _served(arch: str, seed: int) -> LoadedModel:
    torch.manual_seed(seed)
    module = build_model(arch, 10).eval()  # random weights: fine for timing
    ref = VersionRef("m", arch, "0" * 64, f"m/{arch}/model.pt", {})
    meta = ArtifactMetadata(architecture=arch, normalization={"mean": 0.1307, "std": 0.3081})
    return LoadedModel(ref, module, meta, lambda f, fp: DynamicBatcher(f, forward_parts=fp))


def test_abba_order_on_the_same_batches_after_warm_up() -> None:
    calls: list = []
    images = _images(100)
    run = measure_paired_latency(
        Spy("A", calls), Spy("B", calls), images, batch_size=32, rounds=6, warmup=1
    )
    warm, timed = calls[:4], calls[4:]
    assert [n for n, _ in warm] == ["A", "B", "A", "B"]
    assert [n for n, _ in timed] == list("ABBAABBAABBA")
    for i in range(6):
        (_, first), (_, second) = timed[2 * i], timed[2 * i + 1]
        assert first is second  # both models timed on the very same batch
        assert np.array_equal(first, images[(i % 3) * 32 : (i % 3 + 1) * 32])
    assert len(run.baseline_ms) == len(run.candidate_ms) == 6
    assert all(ms > 0 for ms in run.baseline_ms + run.candidate_ms)
    assert (run.batch_size, run.order) == (32, "ABBA")


def test_random_order_is_seeded_and_balanced_per_round() -> None:
    assert round_orders(50, "random", seed=1) == round_orders(50, "random", seed=1)
    assert round_orders(50, "random", seed=1) != round_orders(50, "random", seed=2)
    # Counterbalanced: each version goes first in exactly half the rounds, either order.
    assert sum(round_orders(50, "random", seed=1)) == sum(round_orders(50, "ABBA")) == 25
    calls: list = []
    measure_paired_latency(
        Spy("A", calls), Spy("B", calls), _images(64), 32, 20, warmup=0, order="random"
    )
    pairs = [{calls[i][0], calls[i + 1][0]} for i in range(0, len(calls), 2)]
    assert pairs == [{"A", "B"}] * 20


def test_batches_are_full_except_when_there_is_only_one() -> None:
    assert [len(b) for b in batches_of(_images(100), 32)] == [32, 32, 32]
    assert [len(b) for b in batches_of(_images(10), 32)] == [10]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"rounds": 1}, "rounds"),
        ({"order": "AB"}, "unknown order"),
        ({"warmup": -1}, "warmup"),
    ],
)
def test_bad_settings_are_refused(kw: dict, match: str) -> None:
    args = {"batch_size": 8, "rounds": 4, **kw}
    with pytest.raises(ValueError, match=match):
        measure_paired_latency(Spy("A", []), Spy("B", []), _images(16), **args)


def test_no_images_are_refused() -> None:
    with pytest.raises(ValueError, match="no images"):
        measure_paired_latency(Spy("A", []), Spy("B", []), _images(0), 8, 4)


def test_real_zoo_models_feed_the_gate_statistics() -> None:
    calls: list = []
    mlp, cnn = _served("mlp", 0), _served("mnist_cnn", 1)
    run = measure_paired_latency(
        Spy("A", calls, mlp), Spy("B", calls, cnn), _images(64), batch_size=16, rounds=8
    )
    assert len(calls) == 2 * 2 * 2 + 2 * 8  # warm-up: 2 passes x 2 batches x 2 models
    assert len(run.baseline_ms) == len(run.candidate_ms) == 8
    assert all(np.isfinite(run.baseline_ms)) and all(np.isfinite(run.candidate_ms))
    stats = paired_ratio(run.baseline_ms, run.candidate_ms, alpha=0.025)
    assert stats.rounds == 8 and stats.decidable  # 8 rounds: the interval is [min, max]
    assert 0 < stats.ci_low <= stats.ratio <= stats.ci_high
    ratios = np.asarray(run.candidate_ms) / np.asarray(run.baseline_ms)
    assert stats.ratio == pytest.approx(np.median(ratios))
    assert (stats.ci_low, stats.ci_high) == pytest.approx((ratios.min(), ratios.max()))
