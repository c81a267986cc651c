"""Adapter for domain.ports.ShardEvaluator: a version's forward passes over a dataset slice."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from domain.registry.decisions import VersionState
from ml.serving import ModelCache, VersionRef

KEPT_DATASETS = 4


def run_batches(
    model, images: np.ndarray, batch_size: int
) -> tuple[list[int], list[float], list[int]]:
    """Forward ``images`` batch by batch, timing each batch (runs in the inference thread)."""
    preds: list[int] = []
    lats: list[float] = []
    sizes: list[int] = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        t = time.perf_counter()
        logits = model.forward(batch)
        lats.append((time.perf_counter() - t) * 1000)
        preds.extend(logits.argmax(axis=1).tolist())
        sizes.append(len(batch))
    return preds, lats, sizes


def version_ref(version: VersionState) -> VersionRef:
    """What the model cache needs to load (and check) a version."""
    import msgspec

    return VersionRef(
        version.model_name,
        version.model_version,
        version.sha256,
        version.artifact_uri,
        msgspec.to_builtins(version.metadata),
    )


class TorchShardEvaluator:
    """Loads datasets (a few kept in memory) off the event loop and runs shards on the cache."""

    def __init__(
        self,
        models: ModelCache,
        data_dir: Path | None,
        cache_dir: Path,
        allow_download: bool,
        traffic=None,
    ) -> None:
        self.models = models
        self.traffic = traffic  # frozen traffic datasets (ml.catalog.FrozenTraffic), if any
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self.allow_download = allow_download
        self._datasets: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = asyncio.Lock()

    async def dataset(self, dataset_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of a dataset id; decoding runs in a thread, once per id."""
        async with self._lock:
            hit = self._datasets.get(dataset_id)
            if hit is None and self.traffic is not None and dataset_id.startswith("traffic:"):
                hit = await self.traffic.load(dataset_id)  # frozen: never changes
                self._datasets[dataset_id] = hit
            if hit is None:
                hit = await asyncio.to_thread(self._load, dataset_id)
                self._datasets[dataset_id] = hit
                while len(self._datasets) > KEPT_DATASETS:
                    self._datasets.popitem(last=False)
            self._datasets.move_to_end(dataset_id)
            return hit

    def _load(self, dataset_id: str) -> tuple[np.ndarray, np.ndarray]:
        from ml.datasets import load_dataset

        d = load_dataset(
            dataset_id,
            data_dir=self.data_dir,
            cache_dir=self.cache_dir,
            allow_download=self.allow_download,
        )
        return d.images.numpy(), d.labels.numpy()

    async def evaluate(
        self, version: VersionState, dataset_id: str, start: int, stop: int, batch_size: int
    ) -> tuple[list[int], list[int], list[float], list[int]]:
        """Predictions, labels, per-batch latencies (ms) and sizes of images [start, stop)."""
        images, labels = await self.dataset(dataset_id)
        model = await self.models.get(version_ref(version))
        loop = asyncio.get_running_loop()
        preds, lats, sizes = await loop.run_in_executor(
            self.models.executor, run_batches, model, images[start:stop], batch_size
        )
        return preds, labels[start:stop].tolist(), lats, sizes
