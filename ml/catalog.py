"""Adapter for domain.job_handlers.DatasetCatalog: dataset ids and sizes, without loading pixels."""

from __future__ import annotations

from pathlib import Path

from domain.errors import InvalidInput
from ml.datasets import DatasetError, find_source, parse_dataset_id


class DatasetCatalog:
    """Answers 'how many images does this id select?' from file headers."""

    def __init__(self, data_dir: Path | None, cache_dir: Path, allow_download: bool) -> None:
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self.allow_download = allow_download

    def size(self, dataset_id: str) -> int:
        """Images selected by ``dataset_id``; InvalidInput naming what is available otherwise."""
        try:
            ref = parse_dataset_id(dataset_id)
            source = find_source(
                ref.name, ref.split, data_dir=self.data_dir, cache_dir=self.cache_dir,
                allow_download=self.allow_download,
            )  # fmt: skip
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
