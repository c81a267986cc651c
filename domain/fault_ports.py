"""Ports of the fault paths: the shard stream's backlog (for the lost-shard sweeper)."""

from __future__ import annotations

from typing import Protocol


class ShardBacklog(Protocol):
    """What the shard stream still holds for the batch-inference group."""

    async def outstanding(self) -> set[tuple[str, int]]:
        """(job id, shard) of every work message queued or delivered but not acknowledged."""
        ...

    async def lead(self, holder: str, seconds: float) -> bool:
        """Whether ``holder`` sweeps this period (one sweeper at a time across workers)."""
        ...
