"""Adapter for domain.ports.DatasetCatalog: dataset ids, sizes and classes, without pixels."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

import numpy as np

from domain.errors import InvalidInput
from domain.traffic.policy import is_traffic_dataset, traffic_dataset_name


class FrozenTraffic(Protocol):
    """Frozen traffic datasets (``traffic:<name>``, storage.traffic.store.TrafficDatasets)."""

    async def size(self, dataset_id: str) -> int:
        """Labelled images of the dataset (only those can be evaluated)."""
        ...

    async def load(self, dataset_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of the labelled requests, in dataset order."""
        ...


class DatasetCatalog:
    """Answers 'how many images does this id select?' from file headers."""

    def __init__(
        self,
        data_dir: Path | None,
        cache_dir: Path,
        allow_download: bool,
        traffic: FrozenTraffic | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self.allow_download = allow_download
        self.traffic = traffic

    async def size(self, dataset_id: str) -> int:
        """Images selected by ``dataset_id``; InvalidInput naming what is available otherwise.

        A frozen traffic dataset (``traffic:<name>``) counts its labelled requests only.
        """
        if is_traffic_dataset(dataset_id):
            traffic_dataset_name(dataset_id)  # InvalidInput for a malformed name
            if self.traffic is None:
                raise InvalidInput(f"traffic datasets cannot be read here ({dataset_id})")
            return await self.traffic.size(dataset_id)
        # Reading (and maybe decompressing) file headers blocks: keep it off the event loop.
        return await asyncio.to_thread(self.size_now, dataset_id)

    async def class_names(self, dataset_id: str) -> list[str]:
        """Class names of the dataset an id selects from (digits when unknown)."""
        from ml.datasets import CLASS_NAMES, DatasetError, parse_dataset_id

        if is_traffic_dataset(dataset_id):  # class indices as labelled by feedback
            return [str(i) for i in range(10)]
        try:
            return list(CLASS_NAMES[parse_dataset_id(dataset_id).name])
        except (KeyError, ValueError, DatasetError):
            return [str(i) for i in range(10)]

    def size_now(self, dataset_id: str) -> int:
        """The blocking form of ``size``."""
        # Imported here: torch (under ml.datasets) is slow to import for CLI verbs without it.
        from ml.datasets import DatasetError, find_source, parse_dataset_id

        try:
            ref = parse_dataset_id(dataset_id)
            source = find_source(
                ref.name,
                ref.split,
                data_dir=self.data_dir,
                cache_dir=self.cache_dir,
                allow_download=self.allow_download,
            )
            available = source.size()
        except DatasetError as exc:
            raise InvalidInput(str(exc)) from None
        if ref.n is None:
            return available
        if ref.n > available:
            raise InvalidInput(
                f"dataset id {dataset_id!r} asks for {ref.n:,} images but the {ref.name} "
                f"{ref.split} split holds {available:,}; use {ref.name}_{available} or fewer"
            )
        return ref.n
