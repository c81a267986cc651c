"""ASGI middleware: a server span, a correlation id, request metrics and an access log line.

Every HTTP request gets a span (continuing an incoming ``traceparent``) and a correlation id
(``X-Correlation-ID`` when it is a UUID, else a new one). Both are in every log line written
while the request runs, in the events it records (api/auth.py) and in the response headers.
"""

from __future__ import annotations

import logging
import time
import uuid

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry.trace import Status, StatusCode

from observability.logging import CORRELATION_ID
from observability.metrics import instruments
from observability.tracing import current_trace_id, end_server_span, start_server_span

log = structlog.get_logger("http")
# Hot read paths log at debug when they succeed; every write and every error logs at info.
QUIET_ROUTES = frozenset(
    {
        "/predict",
        "/metrics",
        "/health",
        "/v2/models/{name:str}/infer",
        "/v2/models/{name:str}/versions/{version:str}/infer",
    }
)
UNTRACED = frozenset({"/metrics"})  # scrapes every few seconds would drown the traces


# The request headers the middleware reads: the correlation id and W3C trace context.
WANTED = frozenset({b"x-correlation-id", b"traceparent", b"tracestate", b"baggage"})


def _wanted_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Just the headers in ``WANTED``, decoded (not every header of every request)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in raw if k in WANTED}


def correlation_id_of(raw: str | None) -> str:
    """The caller's X-Correlation-ID when it is a UUID, else a new one."""
    try:
        return str(uuid.UUID(raw)) if raw else str(uuid.uuid4())
    except ValueError:
        return str(uuid.uuid4())


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    """Wrap the app; handlers set ``request.state.model_name`` once a model name resolved."""
    inst = instruments()
    latency, count = inst.request_latency, inst.request_count.add
    # Whether debug lines are written at all (LOG_LEVEL): building a skipped one costs ~8 µs.
    log_debug = log.bind().is_enabled_for(logging.DEBUG)

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = _wanted_headers(scope["headers"])
        correlation = correlation_id_of(headers.get("x-correlation-id"))
        state = scope.setdefault("state", {})  # type: ignore[typeddict-item]
        state["correlation_id"] = correlation
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = [(b"x-correlation-id", correlation.encode())]
                if trace_id := current_trace_id():
                    extra.append((b"x-trace-id", trace_id.encode()))
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        method = scope.get("method", "GET")
        path = scope.get("path", "")
        span, token = (
            (None, None)
            if path in UNTRACED
            else start_server_span(
                method, headers, {"http.request.method": method, "url.path": path}
            )
        )
        bound = CORRELATION_ID.set(correlation)
        try:
            await app(scope, receive, send_wrapper)
        except BaseException as exc:
            if span is not None and span.is_recording():
                span.record_exception(exc)
            raise
        finally:
            route = scope.get("path_template") or "unmatched"
            elapsed = time.perf_counter() - start
            if span is not None and span.is_recording():
                span.update_name(f"{method} {route}")
                span.set_attributes(
                    {
                        "http.route": route,
                        "http.response.status_code": status,
                        "correlation_id": correlation,
                    }
                )
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            model_name = state.get("model_name", "")
            latency.record(elapsed, {"endpoint": route, "model_name": model_name})
            count(route, model_name, str(status))
            quiet = status < 400 and (method in ("GET", "HEAD") or route in QUIET_ROUTES)
            if not quiet or log_debug:
                (log.debug if quiet else log.info)(
                    "http_request",
                    method=method,
                    endpoint=route,
                    path=scope.get("path"),
                    status=status,
                    duration_ms=round(elapsed * 1000, 3),
                )
            CORRELATION_ID.reset(bound)
            if span is not None:
                end_server_span(span, token)

    return middleware
