"""A model ready to serve: its verified weights on their device, the graph that runs them, its
batcher, and the warm-up that moves the first forwards' costs to load time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from events.registry import ArtifactMetadata
from ml.batcher import DynamicBatcher, concatenate_images
from ml.device import HostStaging, warm_up_sizes
from ml.graph import LoneGraph, serving_graph
from ml.preprocess import EXPECTED_SIZE, Normalizer
from ml.threads import SINGLE_THREAD, ThreadPolicy

# Held by inline forwards (the event loop) and by the mirror's timed probe of each version
# (api/mirror_forwards.py), so that no forward runs beside a probe in this process. One
# running beside it keeps its version's weights hot in the caches the cores share and made that
# version read faster: an equally fast candidate read > 1.2x prod's time in 42% of pairs with prod
# running in another thread meanwhile, 5% with this lock (both versions' weights are this
# process's memory; another process's forwards, on their own copy, made no difference).
FORWARD_EXCLUSION = threading.Lock()


@dataclass(frozen=True)
class VersionRef:
    """What the cache needs to know about a registered version."""

    model_name: str
    model_version: str
    sha256: str
    artifact_uri: str
    metadata: dict

    def labels(self) -> dict[str, str]:
        """The version's name and version, as log fields."""
        return {"model_name": self.model_name, "model_version": self.model_version}


class LoadedModel:
    """A model ready to serve: weights verified, eval mode, on its device, with its batcher."""

    def __init__(
        self,
        ref: VersionRef,
        module: torch.nn.Module,
        meta: ArtifactMetadata,
        batcher_factory,
        threads: ThreadPolicy | None = None,
        device: torch.device | None = None,
        graph: str = "eager",
        max_batch: int = 32,
    ) -> None:
        self.threads = threads or ThreadPolicy(torch.get_num_threads(), torch.get_num_threads())
        self.ref = ref
        self.device = device or torch.device("cpu")
        # The graph that runs batches: frozen where that is faster and answers the same.
        sizes = (1, max(1, max_batch))
        self.graph = serving_graph(module.to(self.device), graph, self.device, sizes)
        # Lone images: under `auto`, eager or frozen, whichever measures faster (LoneGraph);
        # `frozen` releases the module (ResNet-18: 38 MB less per version).
        self.lone_choice = (
            LoneGraph({"frozen": self.graph.run, "eager": module}, labels=ref.labels())
            if graph == "auto" and self.graph.kind == "frozen"
            else None
        )
        self.metadata = meta
        # The same normalisation as training (ml.preprocess): what was trained is what is served.
        self.normalize = Normalizer.of(meta)
        self.class_names = list(meta.class_names)
        self._staging = HostStaging(self.device)
        self.batcher: DynamicBatcher = batcher_factory(self.forward, self.forward_parts)
        if self.batcher is not None:  # tests may build a model without one
            self.batcher.forward_inline = self.forward_inline

    def forward(self, images: np.ndarray) -> np.ndarray:
        """Pick the thread count for this batch, then run it (see ``ThreadPolicy``)."""
        return self.forward_parts([images])

    def forward_parts(
        self, parts: list[np.ndarray], threads: int | None = None, run: Callable | None = None
    ) -> np.ndarray:
        """Requests' images, joined here in the inference thread, through the model."""
        if any(p.dtype != parts[0].dtype for p in parts):
            parts = [concatenate_images(parts)]
        ThreadPolicy.use(threads or self.threads.large)
        return self._forward(self._staging.to_device(parts), run or self.graph.run)

    def forward_inline(self, parts: list[np.ndarray]) -> np.ndarray:
        """A lone request's images on the event loop, with the lone-request threads and graph."""
        threads = self.threads.lone()
        with FORWARD_EXCLUSION:  # a mirror's probe holds it for two one-image forwards
            if self.lone_choice is None:
                return self.forward_parts(parts, threads, self.graph.run)
            return self.lone_choice.run(lambda graph: self.forward_parts(parts, threads, graph))

    def _forward(self, x: torch.Tensor, run: Callable) -> np.ndarray:
        """uint8 [N,28,28] (or float32 in [0,1]) -> logits float32 [N,C]; runs in the worker thread."""
        x = self.normalize(x.reshape(-1, *EXPECTED_SIZE))
        with torch.inference_mode():
            logits = run(x)
            # A synchronising copy: the pinned input buffer is free again once it returns.
            return logits.float().cpu().numpy() if self._staging.cuda else logits.numpy()

    def warm_up(self, max_batch: int) -> None:
        """Run every batch size the batcher can form (GPU) or powers of two (CPU) once.

        The first forward at a new shape pays for kernel selection and memory allocation
        (cuDNN, the CUDA caching allocator, oneDNN primitives); this moves it to load time.
        """
        # On one thread here: an OpenMP pool in the model-load thread would slow every forward
        # of the serving threads for good (see ml.threads).
        for size in warm_up_sizes(max_batch, self._staging.cuda):
            self.forward_parts([np.zeros((size, *EXPECTED_SIZE), dtype=np.uint8)], SINGLE_THREAD)
        # What a lone image costs, so the batcher knows from the start whether to run it inline.
        one = np.zeros((1, *EXPECTED_SIZE), dtype=np.uint8)
        runs = self.lone_choice.runs.values() if self.lone_choice else [self.graph.run]
        for run in runs:  # each candidate's first lone forward too
            for _ in range(3):
                started = time.perf_counter()
                self.forward_parts([one], SINGLE_THREAD, run)
                self.batcher.observe(1, time.perf_counter() - started)
