"""Dynamic batching: concurrent requests to one model share a forward pass, off the event loop.

The worker takes whatever is queued when it wakes (up to ``max_batch``). With the default
``max_delay_s=0`` an idle queue adds no wait, as in Triton's default; a positive delay holds a
partial batch open that long to gather more. The queue is bounded: when full, ``submit``
raises ``Overloaded`` at once instead of letting memory grow.

At low load a lone image whose forward is known to take at most ``inline_max_s`` runs on the
event loop itself, as a plain server would: nothing else is waiting, and the two thread
hand-offs cost more than they save (on a busy machine each waits for a time slice). "Alone"
is read from ``IN_FLIGHT``: the HTTP server's own set of request tasks (uvicorn's
``ServerState.tasks``, which ``python -m api`` hands it). A request's task joins that set when
its headers are parsed, before it first runs, so requests that arrived together are all
counted before the first of them reaches the batcher, and a burst is batched rather than run
inline one by one. (An earlier count, kept by the API's entry point, had to yield a loop turn
after counting each request to see a burst; the server's own count needs no turn and no
wrapper, at the same measured speed.) As soon as a second
request is in progress, or a forward is running, everything goes through the queue. Where
nothing counts requests (an app served some other way, tests), nothing runs inline: gaps
between submits were tried as the sign of low load and failed, because a loop blocked by an
inline forward makes every gap look quiet (on an H200, every request of c=32 ran inline).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sized
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ml.preprocess import to_unit_range
from ml.threads import PEERS


def concatenate_images(parts: list[np.ndarray]) -> np.ndarray:
    """Join requests' images; uint8 (0..255) parts are rescaled when float ([0,1]) parts join them."""
    if all(p.dtype == parts[0].dtype for p in parts):
        return np.concatenate(parts)
    return np.concatenate([to_unit_range(p) for p in parts])


class RequestGauge:
    """HTTP requests in progress in this process, as the server that serves them counts them."""

    def __init__(self) -> None:
        self._tasks: Sized | None = None

    def follow(self, tasks: Sized | None) -> None:
        """Count ``tasks``: the server's own collection of the requests it is serving (None:
        nothing counts them, so nothing runs inline)."""
        self._tasks = tasks

    def alone(self) -> bool:
        """Whether requests are counted here and at most one is in progress."""
        tasks = self._tasks
        return tasks is not None and len(tasks) <= 1


IN_FLIGHT = RequestGauge()


class Overloaded(Exception):
    """The batcher's queue is full; the caller should retry later."""


@dataclass(frozen=True)
class BatchStats:
    """What one forward pass looked like, for metrics."""

    size: int
    queue_wait_s: list[float]
    compute_s: float


class _Item:
    __slots__ = ("enqueued", "future", "images")

    def __init__(self, images: np.ndarray, future: asyncio.Future) -> None:
        self.images = images
        self.future = future
        self.enqueued = time.perf_counter()


class DynamicBatcher:
    """Coalesces concurrent ``submit`` calls into batched calls of ``forward``."""

    def __init__(
        self,
        forward: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch: int = 32,
        max_delay_s: float = 0.0,
        max_queue: int = 1024,
        executor: ThreadPoolExecutor | None = None,
        on_batch: Callable[[BatchStats], None] | None = None,
        forward_parts: Callable[[list[np.ndarray]], np.ndarray] | None = None,
        inline_max_s: float = 0.02,
        in_flight: RequestGauge = IN_FLIGHT,
    ) -> None:
        self.forward = forward
        # Takes the requests' arrays unjoined, so the join runs in the inference thread (and,
        # on a GPU, straight into pinned memory) instead of on the event loop.
        self.forward_parts = forward_parts or self._join_and_forward
        # A lone request run on the event loop (LoadedModel sets its own, with its threads).
        self.forward_inline = self.forward_parts
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="inference")
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._queued_images = 0
        self._task: asyncio.Task | None = None
        self._closed = False
        self.inline_max_s = inline_max_s
        self.in_flight = in_flight
        self._busy = False  # a batch is being formed or run in the executor
        self._single_s: float | None = None  # moving average of a one-image forward
        self.inline_runs = 0

    def _join_and_forward(self, parts: list[np.ndarray]) -> np.ndarray:
        return self.forward(parts[0] if len(parts) == 1 else concatenate_images(parts))

    @property
    def queued(self) -> int:
        """Images waiting for a forward pass."""
        return self._queued_images

    async def submit(self, images: np.ndarray) -> np.ndarray:
        """Run ``images`` (uint8 [N,28,28]) through the model as part of a batch; returns logits."""
        if self._closed:
            raise Overloaded("model is being unloaded")
        n = len(images)
        if self._queued_images + n > self.max_queue:
            raise Overloaded(f"inference queue is full ({self._queued_images} images waiting)")
        PEERS.enter()  # the other API processes see this one busy (ml.threads)
        try:
            if n == 1 and self.in_flight.alone() and self._inline_ok():
                return self._run_inline(images, time.perf_counter())
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._run())
            future = asyncio.get_running_loop().create_future()
            self._queued_images += n
            self._queue.put_nowait(_Item(images, future))
            return await future
        finally:
            PEERS.leave()

    def _inline_ok(self) -> bool:
        cost = self._single_s
        return (
            cost is not None
            and cost <= self.inline_max_s
            and not self._busy
            and self._queue.empty()
        )

    def _run_inline(self, images: np.ndarray, enqueued: float) -> np.ndarray:
        started = time.perf_counter()
        logits = self.forward_inline([images])
        done = time.perf_counter()
        self.observe(1, done - started)
        self.inline_runs += 1
        if self.on_batch is not None:
            # After this step, i.e. once the response is written: a lone request waits for it.
            stats = BatchStats(1, [started - enqueued], done - started)
            asyncio.get_running_loop().call_soon(self.on_batch, stats)
        return logits

    def observe(self, size: int, seconds: float) -> None:
        """Track what a one-image forward costs (the inline decision rests on it)."""
        if size == 1:
            last = self._single_s
            self._single_s = seconds if last is None else 0.8 * last + 0.2 * seconds

    async def _collect(self) -> list[_Item]:
        first = await self._queue.get()
        items, size = [first], len(first.images)
        deadline = time.perf_counter() + self.max_delay_s
        while size < self.max_batch:
            if self._queue.empty():
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                item = self._queue.get_nowait()
            items.append(item)
            size += len(item.images)
        return items

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._collect()
            self._busy = True
            size = sum(len(i.images) for i in items)
            self._queued_images -= size
            started = time.perf_counter()
            parts = [i.images for i in items]
            try:
                logits = await loop.run_in_executor(self._executor, self.forward_parts, parts)
            except Exception as exc:
                self._busy = False
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            done = time.perf_counter()
            self._busy = False
            self.observe(size, done - started)
            offset = 0
            for item in items:
                n = len(item.images)
                if not item.future.done():
                    item.future.set_result(logits[offset : offset + n])
                offset += n
            if self.on_batch is not None:
                self.on_batch(
                    BatchStats(size, [started - i.enqueued for i in items], done - started)
                )

    async def aclose(self) -> None:
        """Stop the worker; queued requests fail with Overloaded."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(Overloaded("model was unloaded"))
