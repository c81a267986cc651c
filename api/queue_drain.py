"""Drain a bounded in-process queue in batches, for the writers that hand rows to a stream.

Each stream entry costs the worker that reads it a transaction, an XACK and its bookkeeping
whatever it holds, so a writer lingers up to ``linger_s`` after the first row to fill its
batch: at a few hundred rows a second an entry holds tens of rows instead of one or two
(bench-shadow: the worker's CPU per mirrored request fell with it). Rows wait at most
``linger_s`` longer to be stored; a full batch goes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
IDLE_S = 0.5  # how often an idle writer looks at ``stop``


async def take_batch(queue: asyncio.Queue[T], size: int, linger_s: float) -> list[T]:
    """The next item (waiting up to IDLE_S; [] if none came) and up to ``size`` in all that
    arrive within ``linger_s`` of it."""
    try:
        batch = [await asyncio.wait_for(queue.get(), IDLE_S)]
    except TimeoutError:
        return []
    deadline = time.monotonic() + linger_s
    while len(batch) < size:
        if not queue.empty():
            batch.append(queue.get_nowait())
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            break
        with contextlib.suppress(TimeoutError):
            batch.append(await asyncio.wait_for(queue.get(), left))
    return batch


async def drain(
    queue: asyncio.Queue[T],
    stop: asyncio.Event,
    flush: Callable[[list[T]], Awaitable[None]],
    *,
    size: int,
    linger_s: float,
) -> None:
    """``flush`` batches from ``queue`` until ``stop``; what is queued then is flushed too."""
    while not stop.is_set():
        batch = await take_batch(queue, size, linger_s)
        if batch:
            await flush(batch)
    rest = []
    while not queue.empty():
        rest.append(queue.get_nowait())
    for i in range(0, len(rest), size):
        await flush(rest[i : i + size])
