"""Artifact reads on real files: one open without following symlinks, so the bytes hashed are
the bytes inspected, stored and loaded; metadata.json is held to the import roots too."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from domain.errors import Conflict, InvalidInput
from events.registry import ArtifactMetadata
from ml.artifacts import save_artifact
from ml.serving import ModelCache, VersionRef
from ml.zoo import build_model
from storage.registry.artifacts import STAGING, LocalArtifactStore

_OPENS: list[str] = []
_WATCH: set[str] = set()


def _audit(event: str, args: tuple) -> None:
    if event == "open" and args and str(args[0]) in _WATCH:
        _OPENS.append(str(args[0]))


sys.addaudithook(_audit)  # cannot be removed; it only records paths a test watches


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    meta = ArtifactMetadata(architecture="mnist_cnn", num_classes=10)
    return save_artifact(build_model("mnist_cnn", 10), meta, tmp_path / "src")


def _ref(path: Path, uri: str = "m/v1/model.pt") -> VersionRef:
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    meta = {"architecture": "mnist_cnn", "num_classes": 10}
    return VersionRef("m", "v1", sha, uri, meta)


def test_the_model_cache_opens_the_artifact_once(artifact: Path) -> None:
    cache = ModelCache(lambda uri: artifact, warm_up=False, device="cpu")
    ref = _ref(artifact)
    _WATCH.add(str(artifact))
    try:
        _OPENS.clear()
        model = cache._load(ref)
    finally:
        _WATCH.discard(str(artifact))
        cache.executor.shutdown()
    opens = len(_OPENS)
    assert model.ref.model_version == "v1"
    assert opens == 1  # before: once to hash it, once more to load it


def test_the_model_cache_follows_no_symlink(artifact: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.pt"
    link.symlink_to(artifact)
    cache = ModelCache(lambda uri: link, warm_up=False, device="cpu")
    try:
        with pytest.raises(Conflict, match="symbolic link"):
            cache._load(_ref(artifact))
    finally:
        cache.executor.shutdown()


def test_registration_works_on_the_bytes_it_read_once(artifact: Path, tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store", (tmp_path,), 1 << 30)
    original = artifact.read_bytes()
    staged = store.resolve_source(str(artifact))
    artifact.write_bytes(b"swapped after the check")  # the source changes under us
    sha, size = store.digest(staged)
    stored = store.put(staged, "m", "v1", sha)
    kept = store.path_for(stored.uri).read_bytes()
    assert kept == original and sha == hashlib.sha256(original).hexdigest()
    assert size == len(original)
    assert not any((tmp_path / "store" / STAGING).iterdir())  # the snapshot is gone


def test_metadata_beside_the_artifact_must_lie_in_the_import_roots(
    artifact: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.json"
    secret.write_text('{"architecture": "mnist_cnn"}')
    (artifact.parent / "metadata.json").unlink()
    (artifact.parent / "metadata.json").symlink_to(secret)
    store = LocalArtifactStore(tmp_path / "store", (artifact.parent,), 1 << 30)
    with pytest.raises(InvalidInput, match="outside the allowed roots"):
        store.resolve_source(str(artifact))


def test_metadata_inside_the_roots_travels_with_the_snapshot(
    artifact: Path, tmp_path: Path
) -> None:
    store = LocalArtifactStore(tmp_path / "store", (tmp_path,), 1 << 30)
    staged = store.resolve_source(str(artifact))
    assert (
        staged.with_name("metadata.json").read_bytes()
        == (artifact.parent / "metadata.json").read_bytes()
    )


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_source_that_is_no_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    import os

    target = tmp_path / "model.pt"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    store = LocalArtifactStore(tmp_path / "store", (tmp_path,), 1 << 30)
    with pytest.raises(InvalidInput, match="not a regular file"):
        store.resolve_source(str(target))


def _second(tmp_path: Path) -> Path:
    meta = ArtifactMetadata(architecture="mnist_cnn", num_classes=10)
    return save_artifact(build_model("mnist_cnn", 10), meta, tmp_path / "second")


@pytest.mark.anyio
async def test_a_load_does_not_wait_for_the_inference_thread(
    artifact: Path, tmp_path: Path
) -> None:
    import asyncio
    import threading

    other = _second(tmp_path)
    paths = {"m/v1/model.pt": artifact, "m/v2/model.pt": other}
    cache = ModelCache(paths.__getitem__, warm_up=False, device="cpu")
    release = threading.Event()
    cache.executor.submit(release.wait, 30)  # a long forward holds the inference thread
    try:
        ref = _ref(other, "m/v2/model.pt")
        loaded = await asyncio.wait_for(cache.get(ref), 20)  # before: queued behind it
        assert loaded.ref.artifact_uri == "m/v2/model.pt"
    finally:
        release.set()
        await cache.aclose()


@pytest.mark.anyio
async def test_an_evicted_idle_model_is_released_at_once(artifact: Path, tmp_path: Path) -> None:
    from ml.batcher import Overloaded

    other = _second(tmp_path)
    paths = {"m/v1/model.pt": artifact, "m/v2/model.pt": other}
    cache = ModelCache(paths.__getitem__, warm_up=False, device="cpu", max_models=1)
    try:
        first = await cache.get(_ref(artifact))
        v2 = _ref(other, "m/v2/model.pt")
        await cache.get(VersionRef("m", "v2", v2.sha256, v2.artifact_uri, v2.metadata))
        assert cache.loaded == [("m", "v2")]
        with pytest.raises(Overloaded, match="unloaded"):  # before: open for 30 more seconds
            await first.batcher.submit(np.zeros((1, 28, 28), np.uint8))
    finally:
        await cache.aclose()


@pytest.mark.parametrize("target", ["loop", "dangling"])
def test_a_broken_metadata_link_is_invalid_input(artifact: Path, tmp_path: Path, target) -> None:
    sidecar = artifact.parent / "metadata.json"
    sidecar.unlink()
    sidecar.symlink_to(sidecar if target == "loop" else tmp_path / "gone.json")
    store = LocalArtifactStore(tmp_path / "store", (tmp_path,), 1 << 30)
    with pytest.raises(InvalidInput, match="cannot be read"):
        store.resolve_source(str(artifact))
