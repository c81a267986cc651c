"""The message bus: one entry point for every command, routed by its type to its handler.

Each context's ``handlers`` module maps its command types to handlers of the shape
``handler(command, ports)``; the composition root binds each context's ports once
(``bind``) and hands every entrypoint one bus that holds only what its process can serve.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Handler = Callable[[Any, Any], Awaitable[Any]]
Bound = Callable[[Any], Awaitable[Any]]


def bind(handlers: Mapping[type, Handler], ports: object) -> dict[type, Bound]:
    """The handlers of one context with that context's ports bound."""

    def bound(handler: Handler) -> Bound:
        async def call(command: Any) -> Any:
            return await handler(command, ports)

        call.__name__ = getattr(handler, "__name__", "handler")
        return call

    return {kind: bound(handler) for kind, handler in handlers.items()}


class MessageBus:
    """Routes a command to the one handler of its type."""

    def __init__(self, *routes: Mapping[type, Bound]) -> None:
        self._routes: dict[type, Bound] = {}
        for table in routes:
            self._routes.update(table)

    def including(self, *routes: Mapping[type, Bound]) -> MessageBus:
        """A bus that also serves ``routes`` (a worker's, on top of every process's)."""
        return MessageBus(self._routes, *routes)

    def handles(self, kind: type) -> bool:
        """Whether this process can serve commands of ``kind``."""
        return kind in self._routes

    async def handle(self, command: Any) -> Any:
        """Run the command's handler and return its result."""
        try:
            handler = self._routes[type(command)]
        except KeyError:
            raise LookupError(f"no handler for {type(command).__name__} here") from None
        return await handler(command)
