"""Background tasks that cannot die silently: supervised, logged, counted and restarted."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from observability.metrics import instruments

log = structlog.get_logger("supervisor")

Task = Callable[[asyncio.Event], Awaitable[None]]


async def sleep_until_stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True as soon as ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def supervise(
    name: str,
    task: Task,
    stop: asyncio.Event,
    *,
    backoff_s: float = 0.5,
    max_backoff_s: float = 30.0,
) -> None:
    """Run ``task(stop)`` until ``stop``; a crash is logged with its trace, counted, and restarted."""
    delay = backoff_s
    instruments().task_restarts.add(0, {"task": name})  # the series exists before any crash
    while not stop.is_set():
        try:
            await task(stop)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("background_task_crashed", task=name, exc_info=exc)
        else:
            if stop.is_set():
                return
            log.error("background_task_exited", task=name)
        instruments().task_restarts.add(1, {"task": name})
        if await sleep_until_stopped(stop, delay):
            return
        delay = min(delay * 2, max_backoff_s)
        log.info("background_task_restarting", task=name)


def every(
    interval_s: float,
    step: Callable[[], Awaitable[None]],
    *,
    expected: tuple[type[BaseException], ...] = (),
    name: str,
) -> Task:
    """A task that runs ``step`` every ``interval_s``; ``expected`` errors are logged and skipped."""

    async def loop(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await step()
            except expected as exc:
                log.warning("background_step_failed", task=name, error=str(exc)[:200])
            if await sleep_until_stopped(stop, interval_s):
                return

    return loop


def start(name: str, task: Task, stop: asyncio.Event) -> asyncio.Task[None]:
    """Create the supervised asyncio task."""
    return asyncio.create_task(supervise(name, task, stop), name=name)
