"""The serving graph (ml.graph): frozen where asked and faithful, the eager model otherwise."""

from __future__ import annotations

import gc
import hashlib
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from events.registry import ArtifactMetadata
from ml.artifacts import save_artifact
from ml.graph import serving_graph, wanted
from ml.serving import LoadedModel, ModelCache, VersionRef
from ml.zoo import build_model

CPU = torch.device("cpu")
_REF = VersionRef("m", "v1", "0" * 64, "m/v1/model.pt", {"architecture": "mnist_cnn"})


class BatchShaped(nn.Module):
    """Output shape from a Python int: tracing bakes it in, so other batch sizes disagree."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(int(x.shape[0]), 10) + x.mean()


class DictOut(nn.Module):
    """Returns a dict, which torch.jit.trace refuses (strict mode)."""

    def forward(self, x: torch.Tensor) -> dict:
        return {"logits": x.flatten(1)[:, :10]}


def test_auto_freezes_on_the_cpu_and_not_on_a_gpu() -> None:
    assert wanted("auto", CPU) and wanted("frozen", CPU) and not wanted("eager", CPU)
    assert not wanted("auto", torch.device("cuda", 0))
    assert wanted("frozen", torch.device("cuda", 0))


@pytest.mark.parametrize("arch", ["mnist_cnn", "mlp"])
def test_the_frozen_graph_answers_as_the_model(arch: str) -> None:
    module = build_model(arch, 10).eval()
    graph = serving_graph(module, "auto", CPU, (1, 32))
    assert graph.kind == "frozen" and graph.reason == ""
    assert graph.run is not module
    x = torch.rand(7, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected, actual = module(x), graph.run(x)
    assert actual.shape == (7, 10)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(actual.argmax(1), expected.argmax(1))


def test_eager_is_the_model_itself() -> None:
    module = build_model("mnist_cnn", 10).eval()
    graph = serving_graph(module, "eager", CPU)
    assert graph.run is module and graph.kind == "eager" and graph.reason == ""


def test_a_graph_that_disagrees_is_refused() -> None:
    module = BatchShaped()
    graph = serving_graph(module, "frozen", CPU, (1, 4))
    assert graph.kind == "eager" and graph.run is module
    assert "returns shape (1, 10), the model (4, 10)" in graph.reason


def test_a_graph_that_cannot_be_built_is_refused() -> None:
    module = DictOut()
    graph = serving_graph(module, "frozen", CPU)
    assert graph.kind == "eager" and graph.run is module
    assert graph.reason.startswith("the frozen graph could not be built")


def test_the_model_cache_serves_the_graph_it_was_asked_for(tmp_path: Path) -> None:
    meta = ArtifactMetadata(architecture="mnist_cnn", num_classes=10)
    path = save_artifact(build_model("mnist_cnn", 10), meta, tmp_path / "src")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    ref = VersionRef(
        "m", "v1", sha, "m/v1/model.pt", {"architecture": "mnist_cnn", "num_classes": 10}
    )
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    logits = {}
    for graph in ("auto", "eager"):
        cache = ModelCache(lambda uri: path, warm_up=False, device="cpu", graph=graph)
        try:
            model = cache._load(ref)
        finally:
            cache.executor.shutdown()
            cache.load_executor.shutdown()
        assert model.graph.kind == ("frozen" if graph == "auto" else "eager")
        logits[graph] = model.forward(images)
    np.testing.assert_allclose(logits["auto"], logits["eager"], rtol=1e-4, atol=1e-4)


def test_frozen_releases_the_eager_module_and_auto_keeps_it_for_lone_images() -> None:
    """`frozen` runs everything on the graph (which holds its own weights) and drops the
    model as trained; `auto` keeps it to run lone images, and batches on the graph."""
    meta = ArtifactMetadata(architecture="mnist_cnn", num_classes=10)
    kept, lone_is_graph = {}, {}
    for graph in ("frozen", "auto", "eager"):
        module = build_model("mnist_cnn", 10).eval()
        alive = weakref.ref(module)
        model = LoadedModel(_REF, module, meta, lambda *_: None, device=CPU, graph=graph)
        del module
        gc.collect()
        kept[graph] = alive() is not None
        lone_is_graph[graph] = model.lone is model.graph.run
        assert model.graph.kind == ("eager" if graph == "eager" else "frozen")
    assert kept == {"frozen": False, "auto": True, "eager": True}
    assert lone_is_graph == {"frozen": True, "auto": False, "eager": True}


def test_auto_answers_a_lone_image_as_its_batch_does() -> None:
    """The lone-image path (eager under auto) and the batch path (frozen) agree."""
    meta = ArtifactMetadata(architecture="mnist_cnn", num_classes=10)
    model = LoadedModel(_REF, build_model("mnist_cnn", 10).eval(), meta, lambda *_: None,
                        device=CPU, graph="auto")  # fmt: skip
    images = np.random.default_rng(1).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    batch = model.forward(images)
    lone = np.concatenate([model.forward_inline([img[None]]) for img in images])
    np.testing.assert_allclose(lone, batch, rtol=1e-4, atol=1e-4)
    assert (lone.argmax(1) == batch.argmax(1)).all()
