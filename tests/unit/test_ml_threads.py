"""Torch threads in a serving process: one OpenMP pool per serving thread, none elsewhere."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from events.registry import ArtifactMetadata
from ml.batcher import DynamicBatcher
from ml.serving import LoadedModel, ModelCache, VersionRef
from ml.threads import ThreadPolicy
from ml.zoo import build_model


@pytest.mark.parametrize(
    ("small", "large", "cores", "expected"),
    [
        (2, 1, 2, (2, 1)),  # 2 cores: lone requests on both, batches on one
        (16, 15, 16, (2, 15)),  # one process on 16 cores: the batch pool keeps its cores
        (4, 3, 16, (4, 3)),  # a process's share of 16 cores: both fit, nothing changes
        (8, 40, 4, (1, 4)),  # more than the cores asked: clamped
    ],
)
def test_the_two_pools_stay_within_the_cores(small, large, cores, expected) -> None:
    policy = ThreadPolicy.within_cores(small, large, cores)
    assert (policy.small, policy.large) == expected


def _in_new_thread(fn):
    result: list = []
    t = threading.Thread(target=lambda: result.append(fn()))
    t.start()
    t.join()
    return result[0]


def test_inline_forwards_use_the_lone_count_and_batches_the_batch_count() -> None:
    module = build_model("mnist_cnn", 10).eval()
    ref = VersionRef("m", "v", "0" * 64, "m/v/model.pt", {})
    meta = ArtifactMetadata(architecture="mnist_cnn", normalization={"mean": 0.1, "std": 0.3})
    model = LoadedModel(
        ref, module, meta, lambda f, fp: DynamicBatcher(f, forward_parts=fp), ThreadPolicy(2, 1)
    )
    assert model.batcher.forward_inline == model.forward_inline
    one = np.zeros((1, 28, 28), dtype=np.uint8)

    def inline() -> int:
        model.forward_inline([one])
        return torch.get_num_threads()

    def batch() -> int:
        model.forward_parts([np.zeros((8, 28, 28), dtype=np.uint8)])
        return torch.get_num_threads()

    assert _in_new_thread(inline) == 2 and _in_new_thread(batch) == 1


def test_the_model_load_thread_runs_torch_on_one_thread(tmp_path: Path) -> None:
    cache = ModelCache(lambda uri: tmp_path / uri, torch_threads=2, batch_threads=2)
    try:
        assert isinstance(cache.load_executor, ThreadPoolExecutor)
        assert cache.load_executor.submit(torch.get_num_threads).result() == 1
    finally:
        cache.executor.shutdown()
        cache.load_executor.shutdown()
