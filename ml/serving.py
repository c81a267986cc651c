"""Online inference: a verified, LRU-bounded model cache with one dynamic batcher per version."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import structlog
import torch

from ml.batcher import BatchStats, DynamicBatcher
from ml.device import resolve_device
from ml.loaded_model import LoadedModel, VersionRef
from ml.threads import SINGLE_THREAD, ThreadPolicy
from ml.verified_load import load_verified

# LoadedModel and VersionRef live in ml.loaded_model; callers import them from here too.
__all__ = ["BatchingConfig", "LoadedModel", "ModelCache", "VersionRef"]

log = structlog.get_logger("serving")


@dataclass(frozen=True)
class BatchingConfig:
    """Dynamic batching settings (see the README's serving section)."""

    max_batch: int = 32
    max_delay_s: float = 0.0
    max_queue: int = 1024


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
        self.graph = graph  # INFERENCE_GRAPH (ml.graph), for serving and batch evaluation alike
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
        """Read and verify the weights, build the model with its batcher, warm it up."""
        module, meta = load_verified(ref, self.resolve_path)

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
