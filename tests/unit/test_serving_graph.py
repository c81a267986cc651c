"""The serving graph (ml.graph): frozen where asked and faithful, the eager model otherwise."""

from __future__ import annotations

import gc
import hashlib
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from structlog.testing import capture_logs
from torch import nn

from events.registry import ArtifactMetadata
from ml.artifacts import save_artifact
from ml.graph import LoneGraph, serving_graph, wanted
from ml.serving import LoadedModel, ModelCache, VersionRef
from ml.zoo import build_model
from observability.logging import configure_logging

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
    model as trained; `auto` keeps it as a candidate for lone images, and batches on the graph."""
    meta = ArtifactMetadata(architecture="mnist_cnn", num_classes=10)
    kept, candidates = {}, {}
    for graph in ("frozen", "auto", "eager"):
        module = build_model("mnist_cnn", 10).eval()
        alive = weakref.ref(module)
        model = LoadedModel(_REF, module, meta, lambda *_: None, device=CPU, graph=graph)
        del module
        gc.collect()
        kept[graph] = alive() is not None
        choice = model.lone_choice
        candidates[graph] = choice and {n: r is model.graph.run for n, r in choice.runs.items()}
        assert model.graph.kind == ("eager" if graph == "eager" else "frozen")
    assert kept == {"frozen": False, "auto": True, "eager": True}
    assert candidates == {"frozen": None, "auto": {"frozen": True, "eager": False}, "eager": None}


def test_auto_answers_a_lone_image_as_its_batch_does_on_either_candidate() -> None:
    """The lone-image path, on the eager module or the frozen graph, and the batch path agree."""
    meta = ArtifactMetadata(architecture="mnist_cnn", num_classes=10)
    model = LoadedModel(
        _REF, build_model("mnist_cnn", 10).eval(), meta, lambda *_: None, device=CPU, graph="auto"
    )
    choice = model.lone_choice
    choice.block = 2  # a trial of 2 rounds x 2 candidates x 2 images: both candidates run
    images = np.random.default_rng(1).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    batch = model.forward(images)
    lone = np.concatenate([model.forward_inline([img[None]]) for img in images])
    assert {n: len(t) for n, t in choice._seen.items()} == {"frozen": 4, "eager": 4}
    assert choice.trials == 1 and choice.current in ("frozen", "eager")
    np.testing.assert_allclose(lone, batch, rtol=1e-4, atol=1e-4)
    assert (lone.argmax(1) == batch.argmax(1)).all()


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _serve(choice: LoneGraph, costs: dict[str, float], n: int) -> list[str]:
    """``n`` lone requests; each candidate's forward takes ``costs[name]`` seconds."""
    ran = []
    for _ in range(n):
        name, run = choice.pick()
        assert run is choice.runs[name]
        ran.append(name)
        choice.observe(name, costs[name])
    return ran


def test_lone_graph_tries_each_candidate_in_blocks_then_serves_the_faster() -> None:
    clock = _Clock()
    choice = LoneGraph(
        {"frozen": "F", "eager": "E"},
        block=3,
        rounds=2,
        every_s=60,
        clock=clock,
        labels={"model_name": "m"},
    )
    configure_logging("info")  # the suite runs at warning; the choice is an info line
    try:
        with capture_logs() as logs:
            trial = _serve(choice, {"frozen": 0.002, "eager": 0.001}, 11)
            assert logs == []  # not before the trial's last forward
            trial += _serve(choice, {"frozen": 0.002, "eager": 0.001}, 1)
    finally:
        configure_logging("warning")
    assert trial == ["frozen"] * 3 + ["eager"] * 3 + ["frozen"] * 3 + ["eager"] * 3
    assert [(e["event"], e["model_name"], e["graph"], e["median_ms"]) for e in logs] == [
        ("lone_graph_chosen", "m", "eager", {"frozen": 2.0, "eager": 1.0})
    ]
    assert choice.current == "eager" and choice.trials == 1
    assert choice.medians == {"frozen": 0.002, "eager": 0.001}
    assert _serve(choice, {"frozen": 0.0005, "eager": 0.001}, 20) == ["eager"] * 20


def test_lone_graph_tries_again_later_and_follows_a_change() -> None:
    clock = _Clock()
    choice = LoneGraph({"frozen": "F", "eager": "E"}, block=2, rounds=1, every_s=60, clock=clock)
    _serve(choice, {"frozen": 0.002, "eager": 0.001}, 4)
    assert choice.current == "eager"
    clock.now = 59.0
    assert _serve(choice, {"frozen": 0.0005, "eager": 0.001}, 3) == ["eager"] * 3
    clock.now = 61.0  # the next trial: the machine has changed, the frozen graph is now faster
    assert _serve(choice, {"frozen": 0.0005, "eager": 0.001}, 4) == ["frozen"] * 2 + ["eager"] * 2
    assert choice.current == "frozen" and choice.trials == 2
