"""What the consumer groups share in one worker process: the platform, models, datasets."""

from __future__ import annotations

import os
import socket
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from bootstrap import Platform
from events.base import EventMetadata
from ml.serving import ModelCache, VersionRef


def consumer_name() -> str:
    """Unique per process, so a restarted worker never inherits a dead one's entries by name."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class WorkerContext:
    """Shared state of the groups running in this process."""

    platform: Platform
    models: ModelCache
    name: str = field(default_factory=consumer_name)
    _datasets: OrderedDict[str, tuple[np.ndarray, np.ndarray, list[str]]] = field(
        default_factory=OrderedDict
    )

    def dataset(self, dataset_id: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Images, labels and class names of a dataset id (a few kept in memory)."""
        hit = self._datasets.get(dataset_id)
        if hit is None:
            from ml.datasets import load_dataset

            s = self.platform.settings
            d = load_dataset(
                dataset_id,
                data_dir=s.data_dir,
                cache_dir=s.cache_dir,
                allow_download=s.allow_download,
            )
            hit = (d.images.numpy(), d.labels.numpy(), list(d.class_names))
            self._datasets[dataset_id] = hit
            while len(self._datasets) > 4:
                self._datasets.popitem(last=False)
        return hit

    async def version_ref(self, model_name: str, model_version: str) -> VersionRef:
        """Registry facts of the version a job evaluates."""
        v = await self.platform.queries.get_version(model_name, model_version)
        return VersionRef(model_name, model_version, v.sha256, v.artifact_uri, v.metadata)

    def metadata(self, group: str, fields: dict[bytes, bytes]) -> EventMetadata:
        """Events caused by an entry carry its correlation id and name it as their cause."""
        corr = fields.get(b"correlation_id", b"").decode()
        cause = fields.get(b"event_id", b"").decode()
        return EventMetadata(
            actor=f"worker:{group}@{self.name}",
            correlation_id=uuid.UUID(corr) if corr else uuid.uuid4(),
            causation_id=uuid.UUID(cause) if cause else None,
        )
