"""Groups whose stream entries each carry a batch of rows (``rows``: msgspec bytes) that one
command stores: traffic-recorder's captured requests, shadow-evaluation's paired outcomes.

A redelivered batch stores nothing twice (the command's rows are keyed); a malformed entry is
logged and skipped, since no retry can mend it; a dead-lettered one is logged (it stays in the DLQ).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog

from consumers.context import WorkerContext

Handle = Callable[[WorkerContext, str, str, dict[bytes, bytes]], Awaitable[None]]
DeadLettered = Callable[[WorkerContext, str, str, dict[bytes, bytes], str], Awaitable[None]]


def row_batch_handlers(
    group: str,
    what: str,
    decode: Callable[[bytes], list[Any]],
    command: Callable[..., Any],
    counter: Callable[[], Any],
) -> tuple[Handle, DeadLettered]:
    """The group's ``handle`` and ``dead_lettered``: decode, store with ``command(rows=...)``,
    add what was stored to ``counter()``; ``what`` names the entries in the logs."""
    log = structlog.get_logger(group)

    async def handle(
        ctx: WorkerContext, stream: str, entry_id: str, fields: dict[bytes, bytes]
    ) -> None:
        raw = fields.get(b"rows")
        if raw is None:
            return
        try:
            rows = decode(raw)
        except msgspec.MsgspecError as exc:
            log.warning(f"{what}_entry_skipped", entry_id=entry_id, error=str(exc)[:200])
            return
        counter().add(await ctx.bus.handle(command(rows=rows)))

    async def dead_lettered(
        ctx: WorkerContext, stream: str, entry_id: str, fields: dict[bytes, bytes], reason: str
    ) -> None:
        log.warning(f"{what}_entry_dead_lettered", entry_id=entry_id, reason=reason)

    return handle, dead_lettered
