"""Two small mnist_cnn artifacts really trained on 2,000 Fashion-MNIST training images (v1, v2).

They differ only by seed, so a caller can tell which version answered. Shared by the test
suite's ``trained_artifacts`` fixture, ``just chaos`` and ``just soak``.
"""

from __future__ import annotations

from pathlib import Path

from cli.processes import ROOT

IMAGES = 2000
SEEDS = {"v1": 1, "v2": 2}


def train_small_models(
    folder: Path, data_dir: Path | None = None, cache_dir: Path | None = None
) -> dict[str, Path]:
    """v1 and v2 trained one epoch each and saved under ``folder``; reused when already there."""
    out = {v: folder / v / "model.pt" for v in SEEDS}
    if all(p.exists() for p in out.values()):
        return out
    for version, seed in SEEDS.items():
        out[version] = train_small_cnn(folder / version, IMAGES, seed, data_dir, cache_dir)
    return out


def train_small_cnn(
    folder: Path,
    images: int,
    seed: int,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """mnist_cnn trained one epoch on the first ``images`` training images, saved in ``folder``."""
    import torch

    from events.registry import ArtifactMetadata
    from ml.artifacts import save_artifact
    from ml.datasets import load_dataset
    from ml.training import train_on_tensors

    data = load_dataset(
        "fashion_mnist_train",
        data_dir=data_dir,
        cache_dir=cache_dir or ROOT / ".platform" / "cache",
    )
    torch.manual_seed(seed)
    model, norm, _ = train_on_tensors(
        "mnist_cnn", data.images[:images], data.labels[:images], epochs=1, seed=seed
    )
    meta = ArtifactMetadata(
        architecture="mnist_cnn",
        normalization=norm,
        num_classes=10,
        class_names=list(data.class_names),
        dataset=f"fashion_mnist_train[:{images}]",
    )
    return save_artifact(model, meta, folder)
