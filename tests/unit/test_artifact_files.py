"""One artifact layout: what training writes is what the store keeps and what serving reads."""

from __future__ import annotations

import hashlib
import os

import pytest
import torch

from domain.errors import InvalidInput
from events.registry import ArtifactMetadata
from ml import artifact_files, artifacts
from ml.artifact_files import (
    METADATA_FILE,
    MODEL_FILE,
    atomic_write,
    encode_metadata,
    read_metadata,
    sha256_file,
)
from ml.artifacts import load_model, save_artifact
from ml.zoo import build_model
from storage.registry import artifacts as store_module
from storage.registry.artifacts import LocalArtifactStore

META = ArtifactMetadata(
    architecture="mlp",
    num_classes=10,
    normalization={"mean": 0.286, "std": 0.353},
    class_names=[str(i) for i in range(10)],
    training={"epochs": 1},
)


def test_ml_and_storage_share_one_layout_and_one_hash():
    # The same objects, not equal copies: a second definition would fail these.
    assert artifacts.MODEL_FILE is store_module.MODEL_FILE is artifact_files.MODEL_FILE
    assert artifacts.sha256_file is store_module.sha256_file is artifact_files.sha256_file
    assert artifacts.read_metadata is artifact_files.read_metadata
    assert (MODEL_FILE, METADATA_FILE) == ("model.pt", "metadata.json")


def test_store_writes_the_same_metadata_bytes_as_training(tmp_path):
    trained = save_artifact(build_model("mlp"), META, tmp_path / "trained")
    store = LocalArtifactStore(tmp_path / "store", (tmp_path,), max_bytes=1 << 30)
    sha, size = store.digest(trained)
    stored = store.put(trained, "m", "v1", sha)
    store.write_metadata("m", "v1", META)

    folder = tmp_path / "store" / "m" / "v1"
    assert sorted(os.listdir(folder)) == sorted([MODEL_FILE, METADATA_FILE])
    assert (folder / METADATA_FILE).read_bytes() == (trained.parent / METADATA_FILE).read_bytes()
    assert (folder / METADATA_FILE).read_bytes() == encode_metadata(META)
    assert (stored.sha256, stored.size_bytes) == (sha, size) == sha256_file(folder / MODEL_FILE)
    assert sha == hashlib.sha256(trained.read_bytes()).hexdigest()
    # Serving reads the stored pair back into the model that was saved.
    path = store.path_for(stored.uri)
    assert read_metadata(path) == META
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(load_model(path)(x), load_model(trained)(x))


def test_store_refuses_a_copy_whose_hash_differs_and_leaves_nothing(tmp_path):
    trained = save_artifact(build_model("mlp"), META, tmp_path / "trained")
    store = LocalArtifactStore(tmp_path / "store", (tmp_path,), max_bytes=1 << 30)
    with pytest.raises(InvalidInput, match="changed while it was being copied"):
        store.put(trained, "m", "v1", "0" * 64)
    assert os.listdir(tmp_path / "store" / "m" / "v1") == []


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old")

    def broken(fh):
        fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, broken)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]
