"""A process's background work as one object: supervised tasks that an entrypoint starts in one
line (``async with background.running():``) and that stop when the block ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from observability import supervisor
from observability.supervisor import Task


@dataclass
class Background:
    """Named supervised tasks (restarted with backoff on a crash), and one-shot start-up jobs
    that are cancelled if the process stops first."""

    tasks: dict[str, Task] = field(default_factory=dict)
    once: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)

    def add(self, name: str, task: Task) -> None:
        """Supervise ``task`` under ``name`` while the block runs."""
        self.tasks[name] = task

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run every task until the block ends; then stop them and wait for them."""
        stop = asyncio.Event()
        started = [supervisor.start(name, task, stop) for name, task in self.tasks.items()]
        jobs = [asyncio.create_task(job(), name=name) for name, job in self.once.items()]
        try:
            yield
        finally:
            stop.set()
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, *started, return_exceptions=True)

    async def run(self, stop: asyncio.Event) -> None:
        """Run every task until ``stop`` is set (a worker's main loop)."""
        async with self.running():
            await stop.wait()
