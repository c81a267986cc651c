"""ASGI middleware recording request_latency_seconds and request_count for every request."""

from __future__ import annotations

import time

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from observability.metrics import instruments


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    """Wrap the app; handlers may set ``request.state.model_name`` to label their requests."""
    inst = instruments()
    latency, count = inst.request_latency, inst.request_count

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            state = scope.get("state") or {}
            labels = {
                "endpoint": scope.get("path_template") or "unmatched",
                "model_name": state.get("model_name", ""),
            }
            latency.record(time.perf_counter() - start, labels)
            count.add(1, {**labels, "status": str(status)})

    return middleware
