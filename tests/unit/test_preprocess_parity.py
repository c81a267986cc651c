"""What was trained is what is served: one preprocessing path, checked on real dataset images.

A recording model captures the exact tensor each path feeds it: training's ``fit`` and
``evaluate``, and serving's ``LoadedModel`` given the same images as uint8 arrays, as PNGs
decoded by the API's decoder, and as float32 in [0, 1].
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from domain.errors import InvalidInput
from events.registry import ArtifactMetadata
from ml.batcher import concatenate_images
from ml.datasets import load_dataset
from ml.inspector import check_metadata
from ml.preprocess import MIN_STD, Normalizer, decode_png_image, fit_normalization
from ml.serving import LoadedModel, VersionRef
from ml.training import dataset_normalization, evaluate, fit


class Recorder(nn.Module):
    """A linear model that keeps a copy of every input it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 10)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().float().contiguous().clone())
        return self.fc(x.flatten(1))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    ds = load_dataset("fashion_mnist_64", cache_dir=tmp_path_factory.mktemp("data"))
    return ds.images, ds.labels


def _served(meta: ArtifactMetadata, images: np.ndarray) -> torch.Tensor:
    recorder = Recorder()
    ref = VersionRef("m", "v1", "0" * 64, "m/v1/model.pt", {})
    LoadedModel(ref, recorder, meta, lambda forward, parts: None).forward(images)
    (x,) = recorder.seen
    return x


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _rows(x: torch.Tensor) -> list[tuple[float, ...]]:
    return sorted(map(tuple, x.flatten(1).tolist()))


def test_training_and_serving_feed_the_model_the_same_tensor(dataset):
    images, labels = dataset
    norm = dataset_normalization(images)
    assert norm == fit_normalization(images) and norm["std"] > 0.1  # real, varied images
    meta = ArtifactMetadata(architecture="mlp", num_classes=10, normalization=norm)

    evaluated = Recorder()
    evaluate(evaluated, images, labels, normalization=norm)
    trained = Recorder()
    fit(
        trained,
        images,
        labels,
        epochs=1,
        batch_size=len(images),
        lr=1e-3,
        seed=0,
        normalization=norm,
    )
    (eval_x,), (train_x,) = evaluated.seen, trained.seen

    as_uint8 = _served(meta, images.numpy())
    as_png = _served(meta, np.stack([decode_png_image(_png(im)) for im in images.numpy()]))
    assert as_uint8.shape == eval_x.shape == (len(images), 1, 28, 28)
    assert torch.equal(as_uint8, eval_x)
    assert torch.equal(as_png, eval_x)
    # fit shuffles: the same rows, in another order.
    assert _rows(train_x) == _rows(eval_x)

    # Float requests mean [0, 1]; alone or joined with uint8 ones in a batch, they match
    # up to float rounding.
    as_float = images.numpy().astype(np.float32) / 255.0
    torch.testing.assert_close(_served(meta, as_float), eval_x, rtol=0, atol=1e-5)
    mixed = concatenate_images([images.numpy()[:32], as_float[32:]])
    torch.testing.assert_close(_served(meta, mixed), eval_x, rtol=0, atol=1e-5)


def test_the_normalisation_training_fits_is_one_the_platform_accepts():
    constant = torch.full((4, 28, 28), 7, dtype=torch.uint8)
    norm = fit_normalization(constant)
    assert norm["std"] == 1.0  # nothing to scale; rounding would have made it 0
    check_metadata(ArtifactMetadata(architecture="mlp", normalization=norm))
    x = Normalizer.of(norm)(constant)
    torch.testing.assert_close(x, torch.zeros(4, 1, 28, 28), rtol=0, atol=1e-3)


@pytest.mark.parametrize(
    "norm", [{"std": 0.0}, {"std": MIN_STD / 2}, {"std": float("nan")}, {"mean": float("inf")}]
)
def test_a_std_serving_cannot_use_is_refused_at_registration_and_at_load(norm):
    with pytest.raises(InvalidInput, match="normalization"):
        check_metadata(ArtifactMetadata(architecture="mlp", normalization=norm))
    with pytest.raises(ValueError, match="normalization"):
        Normalizer.of(norm)
