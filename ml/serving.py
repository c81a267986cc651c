"""Online inference: a verified, LRU-bounded model cache with one dynamic batcher per version."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import structlog
import torch

from domain.errors import Conflict
from events.registry import ArtifactMetadata
from ml.batcher import BatchStats, DynamicBatcher, concatenate_images
from ml.device import HostStaging, resolve_device, warm_up_sizes
from ml.graph import LoneGraph, serving_graph
from ml.preprocess import EXPECTED_SIZE, Normalizer
from ml.threads import SINGLE_THREAD, ThreadPolicy

log = structlog.get_logger("serving")


@dataclass(frozen=True)
class BatchingConfig:
    """Dynamic batching settings (see the README's serving section)."""

    max_batch: int = 32
    max_delay_s: float = 0.0
    max_queue: int = 1024


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


class ModelCache:
    """Loads versions on first use, checks their sha256, keeps the most recent ``max_models``."""

    def __init__(
        self,
        resolve_path: Callable[[str], Path],
        *,
        max_models: int = 8,
        batching: BatchingConfig | None = None,
        torch_threads: int | None = None,
        batch_threads: int | None = None,
        idle_threads: int | None = None,
        on_batch: Callable[[BatchStats], None] | None = None,
        device: str | torch.device = "auto",
        warm_up: bool = True,
        on_cache: Callable[[str, str], None] | None = None,
        graph: str = "eager",
    ) -> None:
        self.resolve_path = resolve_path
        self.graph = graph  # INFERENCE_GRAPH (ml.graph); workers evaluate on the eager model
        self.device = resolve_device(device)
        self.warm_up = warm_up
        self.max_models = max_models
        self.batching = batching or BatchingConfig()
        self.on_batch = on_batch
        # (model name, "hit" | "miss" | "loaded" | "load_failed"), for the cache metrics.
        self.on_cache = on_cache or (lambda _name, _event: None)
        self._models: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._loading: dict[tuple[str, str], asyncio.Future[LoadedModel]] = {}
        # One inference thread: torch parallelises inside an op; two forwards in parallel
        # would only fight over the same cores.
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="inference")
        # Loads (read, hash, unpickle, warm up) get their own thread, so a version cycling in
        # never holds up the forwards of the models already serving.
        # One torch thread there from its start (building a model runs parallel ops too): an
        # OpenMP pool in this thread would slow the serving threads' forwards (ml.threads).
        self.load_executor = ThreadPoolExecutor(
            1,
            thread_name_prefix="model-load",
            initializer=ThreadPolicy.use,
            initargs=(SINGLE_THREAD,),
        )
        self._closing: set[asyncio.Task] = set()
        single = torch_threads or torch.get_num_threads()
        self.threads = ThreadPolicy.within_cores(
            single, batch_threads or single, idle=idle_threads or single
        )

    @property
    def loaded(self) -> list[tuple[str, str]]:
        """Keys of the models in memory, least recently used first."""
        return list(self._models)

    async def get(self, ref: VersionRef) -> LoadedModel:
        """The loaded model for a version, loading (once, even under concurrency) if needed."""
        key = (ref.model_name, ref.model_version)
        model = self._models.get(key)
        if model is not None:
            self._models.move_to_end(key)
            self.on_cache(ref.model_name, "hit")
            return model
        self.on_cache(ref.model_name, "miss")
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._loading[key] = pending
            try:
                model = await asyncio.get_running_loop().run_in_executor(
                    self.load_executor, self._load, ref
                )
            except BaseException as exc:
                self.on_cache(ref.model_name, "load_failed")
                pending.set_exception(exc)
                pending.exception()  # mark retrieved when nobody else waits
                raise
            finally:
                self._loading.pop(key, None)
            self._models[key] = model
            self.on_cache(ref.model_name, "loaded")
            pending.set_result(model)
            await self._evict()
            return model
        return await asyncio.shield(pending)

    def _load(self, ref: VersionRef) -> LoadedModel:
        from ml.artifacts import ArtifactError, load_model, read_regular

        path = self.resolve_path(ref.artifact_uri)
        try:  # one open, no symlink followed: the bytes hashed are the bytes loaded
            data = read_regular(path)
        except ArtifactError as exc:
            raise Conflict(f"cannot load {ref.model_name} {ref.model_version}: {exc}") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != ref.sha256:
            # Conflict, not ServiceUnavailable: retrying cannot fix a file that changed on disk.
            raise Conflict(
                f"artifact of {ref.model_name} {ref.model_version} fails its sha256 check "
                f"(registered {ref.sha256[:12]}, on disk {actual[:12]}); refusing to serve it"
            )
        meta = msgspec.convert(ref.metadata or {}, ArtifactMetadata)
        if not meta.architecture:
            raise Conflict(
                f"{ref.model_name} {ref.model_version} has no architecture in its metadata, "
                "so it cannot be served; register it with a metadata.json beside model.pt"
            )
        try:
            Normalizer.of(meta)  # refuse a normalisation that training would never write
            module = load_model(path, meta, data)
        except (ArtifactError, ValueError) as exc:
            raise Conflict(f"cannot load {ref.model_name} {ref.model_version}: {exc}") from exc
        module.eval()

        def batcher(forward, forward_parts) -> DynamicBatcher:
            return DynamicBatcher(
                forward,
                forward_parts=forward_parts,
                max_batch=self.batching.max_batch,
                max_delay_s=self.batching.max_delay_s,
                max_queue=self.batching.max_queue,
                executor=self.executor,
                on_batch=self.on_batch,
            )

        model = LoadedModel(
            ref,
            module,
            meta,
            batcher,
            self.threads,
            self.device,
            self.graph,
            self.batching.max_batch,
        )
        if model.graph.reason:
            log.warning(
                "serving_graph_eager",
                model_name=ref.model_name,
                model_version=ref.model_version,
                reason=model.graph.reason,
            )
        if self.warm_up:
            model.warm_up(self.batching.max_batch)
        return model

    async def _evict(self) -> None:
        while len(self._models) > self.max_models:
            _, model = self._models.popitem(last=False)
            batcher = model.batcher
            if not batcher.queued and not getattr(batcher, "_busy", False):
                await batcher.aclose()  # nothing waits on it: released at once
                continue
            task = asyncio.ensure_future(self._close_when_drained(batcher))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close_when_drained(batcher: DynamicBatcher) -> None:
        """Let the requests already queued on an evicted model finish (30 s at most), close it."""
        for _ in range(3000):
            if not batcher.queued and not getattr(batcher, "_busy", False):
                break
            await asyncio.sleep(0.01)
        await batcher.aclose()

    async def aclose(self) -> None:
        """Stop every batcher and the inference thread."""
        for model in self._models.values():
            await model.batcher.aclose()
        self._models.clear()
        for task in list(self._closing):
            task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.load_executor.shutdown(wait=False, cancel_futures=True)
