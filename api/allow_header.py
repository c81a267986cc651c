"""OPTIONS answers list every method of a path (the Allow header), from the app's routes."""

from __future__ import annotations

from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send


def allow_header_middleware(app: ASGIApp) -> ASGIApp:
    """OPTIONS answers list every method of the path.

    Litestar keeps the Allow list of the first handler registered on a path when more handlers
    join it later, so ``OPTIONS /keys`` would omit GET.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await app(scope, receive, send)
            return
        handler = scope.get("route_handler")
        path = next(iter(handler.paths), None) if handler is not None else None
        allowed = scope["app"].state.get("allow", {}).get(path)

        async def send_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and allowed:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                message["headers"] = [*headers, (b"allow", allowed.encode())]
            await send(message)

        await app(scope, receive, send_allow)

    return middleware


def allowed_methods(app: Litestar) -> dict[str, str]:
    """Path template -> its Allow header value."""
    return {
        route.path: ", ".join(sorted(route.methods))
        for route in app.routes
        if isinstance(route, HTTPRoute)
    }
