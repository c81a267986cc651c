"""Seeded training is bit-reproducible; metadata describes the run."""

from __future__ import annotations

import re

import pytest
import torch

from ml import sources
from ml.training import (
    current_git_sha,
    dataset_normalization,
    evaluate,
    train,
    train_on_tensors,
)


def _synthetic(n: int = 96, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    # Random noise with a class-dependent bright square: learnable, and clearly not a dataset.
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = torch.randint(0, 60, (n, 28, 28), generator=g, dtype=torch.uint8)
    for i, label in enumerate(labels.tolist()):
        images[i, 2 * label : 2 * label + 6, 4:10] = 250
    return images, labels


@pytest.mark.parametrize("arch", ["mlp", "mnist_cnn"])
def test_same_seed_gives_bit_identical_weights(arch):
    images, labels = _synthetic()
    runs = [
        train_on_tensors(arch, images, labels, epochs=2, batch_size=32, lr=1e-3, seed=7)
        for _ in range(2)
    ]
    (m1, n1, h1), (m2, n2, h2) = runs
    assert n1 == n2 and h1[-1]["loss"] == h2[-1]["loss"]
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)


def test_different_seed_gives_different_weights():
    images, labels = _synthetic()
    a = train_on_tensors("mlp", images, labels, epochs=1, batch_size=32, seed=1)[0]
    b = train_on_tensors("mlp", images, labels, epochs=1, batch_size=32, seed=2)[0]
    assert not torch.equal(a.state_dict()["1.weight"], b.state_dict()["1.weight"])


def test_training_learns_the_synthetic_task():
    images, labels = _synthetic(n=512)
    model, norm, history = train_on_tensors("mlp", images, labels, epochs=4, batch_size=64, lr=3e-3)
    assert len(history) == 4 and history[-1]["images_per_s"] > 0
    assert evaluate(model, images, labels, normalization=norm)["accuracy"] > 0.9


def test_dataset_normalization():
    images = torch.tensor([[0, 255]], dtype=torch.uint8).expand(4, 2)
    assert dataset_normalization(images) == {"mean": 0.5, "std": 0.5}


def test_train_refuses_a_test_split(tmp_path):
    with pytest.raises(ValueError, match="fashion_mnist_train"):
        train("mlp", "fashion_mnist_1000", cache_dir=tmp_path)


def test_current_git_sha_is_none_or_a_sha():
    sha = current_git_sha()
    assert sha is None or re.fullmatch(r"[0-9a-f]{40}", sha)


@pytest.mark.skipif(
    sources.idx_source("fashion_mnist", "test", sources.DEBIAN_FASHION_DIR, "x") is None,
    reason="Debian package dataset-fashion-mnist is not installed",
)
def test_train_fills_metadata_from_a_real_dataset(tmp_path):
    result = train(
        "mlp",
        "fashion_mnist_train",
        epochs=1,
        lr=3e-3,
        cache_dir=tmp_path,
        progress=False,
        train_limit=2000,
    )
    meta = result.metadata
    assert meta.architecture == "mlp" and meta.dataset == "fashion_mnist_train"
    assert meta.num_classes == 10 and meta.class_names[0] == "T-shirt/top"
    assert set(meta.normalization) == {"mean", "std"}
    assert meta.training["train_samples"] == 2000 and meta.training["eval_samples"] == 10000
    assert 0.5 < meta.test_metrics["accuracy"] <= 1.0 and meta.test_metrics["loss"] > 0
    assert meta.created_with == f"torch {torch.__version__}"
