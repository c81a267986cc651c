"""Torch threads in a serving process: one OpenMP pool per serving thread, none elsewhere."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from events.registry import ArtifactMetadata
from ml import threads
from ml.batcher import DynamicBatcher
from ml.serving import LoadedModel, ModelCache, VersionRef
from ml.threads import PeerActivity, ThreadPolicy
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


def _peers(path: Path, slots: int) -> list[PeerActivity]:
    path.write_bytes(bytes(8 * slots))
    peers = [PeerActivity() for _ in range(slots)]
    for slot, peer in enumerate(peers):
        peer.attach(str(path), slot)
    return peers


def test_a_process_sees_its_peers_busy_while_they_serve_and_shortly_after(tmp_path) -> None:
    a, b = _peers(tmp_path / "activity", 2)
    assert a.others_idle() and b.others_idle()  # nobody has served yet
    b.enter()
    b.enter()  # two requests in b
    assert not a.others_idle() and a.others_idle() is not b.others_idle()
    b.leave()
    assert not a.others_idle()  # one still in progress
    b.leave()
    assert not a.others_idle()  # just finished: within the window
    a.WINDOW_S = 0.0
    assert a.others_idle()


def test_a_lone_request_uses_the_idle_count_only_while_the_peers_are_idle(tmp_path) -> None:
    a, b = _peers(tmp_path / "activity", 2)
    policy = ThreadPolicy.within_cores(1, 1, cores=2, idle=2)
    assert (policy.small, policy.large, policy.idle) == (1, 1, 2)
    previous = threads.PEERS
    threads.PEERS = a
    try:
        assert policy.lone() == 2
        b.enter()
        assert policy.lone() == 1
    finally:
        threads.PEERS = previous
    assert ThreadPolicy.within_cores(1, 1, cores=2).lone() == 1  # no idle count: never more
    assert ThreadPolicy.within_cores(8, 8, cores=4, idle=8).idle == 1  # within the cores too


def test_a_process_alone_on_its_server_has_no_peers() -> None:
    assert PeerActivity().others_idle()
