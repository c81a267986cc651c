"""Adapter for domain.ports.PairedLatencyMeter: one paired run on the worker's own model cache.

Both versions are loaded into the worker's cache and timed alternately (ABBA) on the same
batches of the gate's dataset, in the inference thread, so the two sets of timings share the
machine's state (ml/paired_latency.py explains the method).
"""

from __future__ import annotations

import asyncio
from functools import partial

from domain.errors import Conflict, InvalidInput, NotFound
from domain.gates.ports import LatencyRun
from domain.registry.decisions import VersionState
from ml.paired_latency import measure_paired_latency
from ml.shard_evaluator import TorchShardEvaluator, version_ref

DEFAULT_BATCH = 64


class TorchPairedLatency:
    """Times a baseline and a candidate version on the same batches, alternately."""

    def __init__(
        self,
        evaluator: TorchShardEvaluator,
        rounds: int,  # GATE_LATENCY_ROUNDS (settings.batch.GateSettings), the one default
        batch_size: int = DEFAULT_BATCH,
        order: str = "ABBA",
    ) -> None:
        self.evaluator = evaluator
        self.rounds = rounds + rounds % 2  # even: each version first in half the rounds
        self.batch_size = batch_size
        self.order = order

    async def measure(
        self, baseline: VersionState, candidate: VersionState, dataset_id: str
    ) -> LatencyRun:
        """One paired run; InvalidInput / NotFound when the dataset or a model cannot load."""
        from ml.datasets import DatasetError

        try:
            images, _ = await self.evaluator.dataset(dataset_id)
        except DatasetError as exc:
            raise InvalidInput(f"dataset {dataset_id!r} cannot be loaded: {exc}") from None
        models = self.evaluator.models
        try:
            a = await models.get(version_ref(baseline))
            b = await models.get(version_ref(candidate))
        except FileNotFoundError as exc:
            raise NotFound(f"an artifact file is missing: {exc.filename}") from None
        except Conflict as exc:
            raise InvalidInput(str(exc)) from None
        selection = images[: self.batch_size * self.rounds]
        run = await asyncio.get_running_loop().run_in_executor(
            models.executor,
            partial(
                measure_paired_latency,
                a,
                b,
                selection,
                self.batch_size,
                self.rounds,
                order=self.order,
            ),
        )
        return LatencyRun(
            baseline_ms=run.baseline_ms,
            candidate_ms=run.candidate_ms,
            batch_size=run.batch_size,
            order=run.order,
        )
