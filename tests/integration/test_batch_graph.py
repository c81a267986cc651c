"""Batch evaluation runs the graph serving runs (ml.graph) and predicts as the eager model does.

A worker's shard evaluator, wired as `just worker` wires it, evaluates a really trained
mnist_cnn on the full Fashion-MNIST test split (10,000 images) on the frozen graph; an
evaluator on the eager model does the same, and every prediction is the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import bootstrap
from domain.registry.commands import RegisterModelVersion
from events.base import EventMetadata
from ml.serving import ModelCache
from ml.shard_evaluator import TorchShardEvaluator, version_ref

pytestmark = pytest.mark.anyio
TEST_SPLIT, IMAGES, BATCH = "fashion_mnist_test", 10_000, 256


@pytest.fixture
async def cpu_platform(test_settings) -> AsyncIterator:
    """A platform evaluating on the CPU with the default graph setting (auto: frozen there)."""
    settings = test_settings.changed(serving={"device": "cpu", "inference_graph": "auto"})
    p = await bootstrap.build_platform(settings, run_migrations=False)
    try:
        yield p
    finally:
        await p.aclose()


async def test_batch_predictions_on_the_frozen_graph_equal_the_eager_models(
    cpu_platform, trained_artifacts: dict[str, Path], model_name: str
) -> None:
    p = cpu_platform
    for version, path in trained_artifacts.items():
        register = RegisterModelVersion(
            model_name=model_name,
            model_version=version,
            source=str(path),
            tags={},
            metadata=EventMetadata(actor="batch-graph-test"),
        )
        await p.bus.handle(register)
    async with p.uow() as tx:
        versions = (await tx.models.load(model_name)).versions
    frozen = bootstrap.build_shard_evaluator(p)
    files = p.settings.files
    eager = TorchShardEvaluator(
        ModelCache(p.artifacts.path_for, device="cpu", graph="eager", warm_up=False),
        files.data_dir,
        files.cache_dir,
        files.allow_download,
    )
    for version in ("v1", "v2"):
        state = versions[version]
        on_graph = await frozen.evaluate(state, TEST_SPLIT, 0, IMAGES, BATCH)
        as_trained = await eager.evaluate(state, TEST_SPLIT, 0, IMAGES, BATCH)
        assert (await frozen.models.get(version_ref(state))).graph.kind == "frozen"
        assert (await eager.models.get(version_ref(state))).graph.kind == "eager"
        preds, labels, _, sizes = on_graph
        assert len(preds) == sum(sizes) == IMAGES and labels == as_trained[1]
        # Identical, not close: the same answers as the model as trained, image for image.
        differing = [i for i, (a, b) in enumerate(zip(preds, as_trained[0], strict=True)) if a != b]
        assert differing == [], f"{version}: {len(differing)} predictions differ"
        # A really trained model (2,000 images, one epoch), not one that answers one class.
        accuracy = sum(a == b for a, b in zip(preds, labels, strict=True)) / IMAGES
        assert accuracy > 0.6, accuracy
    for evaluator in (frozen, eager):
        await evaluator.models.aclose()
