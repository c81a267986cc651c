"""Paired latency: two loaded models timed alternately, batch by batch, on the same inputs.

Latencies from two jobs run at different times compare the machine's noise (other load,
frequency scaling, cache state) as much as the models. Here both models run in one loop:
each round takes one batch and forwards it through both models back to back, so the two
timings of a round share the machine's state. The order inside a round alternates ABBA
(A then B, then B then A, ...) so that neither model is always first (cold caches) or second
(inputs already in cache), and a slow drift of the machine cancels over each pair of rounds;
``order="random"`` shuffles the rounds' orders (seeded, still half each way) instead. The
figures are ms per batch; the gate judges the median of the per-round ratios
candidate/baseline (``domain.gates.noninferiority.paired_ratio``). Blocking: run it in the
inference thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

ORDERS = ("ABBA", "random")


class Forward(Protocol):
    """A loaded model: images in, logits out (ml.serving.LoadedModel is one)."""

    def forward(self, images: np.ndarray) -> np.ndarray:
        """Run one batch; returns once the result is on the host."""
        ...


@dataclass(frozen=True)
class PairedLatencyRun:
    """Per-round latencies in ms; index i of both lists is the same batch, timed back to back."""

    baseline_ms: list[float]
    candidate_ms: list[float]
    batch_size: int
    order: str


def batches_of(images: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Full batches only, so every timing is of the same size (one short batch if that is all)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if len(images) == 0:
        raise ValueError("no images to time the models on")
    full = len(images) // batch_size
    if full == 0:
        return [images]
    return [images[i * batch_size : (i + 1) * batch_size] for i in range(full)]


def round_orders(rounds: int, order: str = "ABBA", seed: int = 0) -> list[bool]:
    """For each round, True when the baseline (A) runs first; either way, each version goes
    first in half the rounds (counterbalanced: a seeded shuffle of equal halves for random)."""
    if order == "ABBA":
        return [i % 2 == 0 for i in range(rounds)]
    if order == "random":
        firsts = np.arange(rounds) % 2 == 0
        return [bool(x) for x in np.random.default_rng(seed).permutation(firsts)]
    raise ValueError(f"unknown order {order!r}; use one of {', '.join(ORDERS)}")


def measure_paired_latency(
    model_a: Forward,
    model_b: Forward,
    images: np.ndarray,
    batch_size: int,
    rounds: int,
    *,
    warmup: int = 2,
    order: str = "ABBA",
    seed: int = 0,
) -> PairedLatencyRun:
    """Time baseline ``model_a`` and candidate ``model_b`` alternately on the same batches."""
    if rounds < 2:
        raise ValueError(f"rounds must be at least 2, got {rounds}")
    if warmup < 0:
        raise ValueError(f"warmup must be 0 or more, got {warmup}")
    batches = batches_of(images, batch_size)
    firsts = round_orders(rounds, order, seed)
    # Warm-up: the first forwards at a shape pay for allocation and kernel selection.
    for _ in range(warmup):
        for batch in batches[:2]:
            model_a.forward(batch)
            model_b.forward(batch)
    a_ms: list[float] = []
    b_ms: list[float] = []
    for i, a_first in enumerate(firsts):
        batch = batches[i % len(batches)]
        pair = ((model_a, a_ms), (model_b, b_ms)) if a_first else ((model_b, b_ms), (model_a, a_ms))
        for model, out in pair:
            t = time.perf_counter()
            model.forward(batch)
            out.append((time.perf_counter() - t) * 1000)
    return PairedLatencyRun(
        baseline_ms=a_ms, candidate_ms=b_ms, batch_size=len(batches[0]), order=order
    )
