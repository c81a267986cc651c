"""Map errors to JSON responses with a clear message: 4xx for the caller, 503 for outages."""

from __future__ import annotations

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from domain.errors import (
    Conflict,
    DomainError,
    IntegrityError,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
)
from ml.batcher import Overloaded

log = structlog.get_logger("api")

_STATUS = {InvalidInput: 400, NotFound: 404, Conflict: 409, ServiceUnavailable: 503}


def error_body(status: int, detail: str, **extra: object) -> dict[str, object]:
    """The one error shape every endpoint uses."""
    return {"status_code": status, "detail": detail, **extra}


def domain_error_handler(_: Request, exc: DomainError) -> Response:
    """Domain errors carry user-safe messages."""
    status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 400)
    if isinstance(exc, IntegrityError):
        status = 500
    return Response(error_body(status, str(exc)), status_code=status)


def _service_from_traceback(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module.startswith(("asyncpg", "sqlalchemy")):
            return "postgresql"
        if module.startswith("redis"):
            return "redis"
        tb = tb.tb_next
    return "a backing service"


def outage_handler(request: Request, exc: Exception) -> Response:
    """A backing service could not be reached: 503 with Retry-After, never a trace."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        service = "redis"
    elif isinstance(exc, DBAPIError):
        service = "postgresql"
    else:  # connection failures surface as bare OSError: tell which client raised it
        service = _service_from_traceback(exc)
    if (
        isinstance(exc, DBAPIError)
        and not exc.connection_invalidated
        and not isinstance(exc, OperationalError | InterfaceError)
    ):
        if "invalid byte sequence" in str(exc) or "\\u0000" in str(exc):
            return Response(
                error_body(400, "text must not contain NUL characters"), status_code=400
            )
        return internal_error_handler(request, exc)
    log.warning("service_unavailable", service=service, error=str(exc).splitlines()[0][:200])
    return Response(
        error_body(503, f"{service} is unavailable; retry shortly"),
        status_code=503,
        headers={"Retry-After": "2"},
    )


def overloaded_handler(_: Request, exc: Exception) -> Response:
    """The inference queue is full: shed load with 503 and a hint when to retry."""
    return Response(error_body(503, str(exc)), status_code=503, headers={"Retry-After": "1"})


def http_exception_handler(_: Request, exc: HTTPException) -> Response:
    """Litestar's own 4xx (validation, 404 route, 405, 413) in the same shape."""
    body = error_body(exc.status_code, exc.detail)
    if getattr(exc, "extra", None):
        body["errors"] = exc.extra
    return Response(body, status_code=exc.status_code, headers=exc.headers)


def too_deep_handler(_: Request, exc: Exception) -> Response:
    """JSON nested deeper than the decoder's recursion limit."""
    return Response(error_body(400, "request body is nested too deeply"), status_code=400)


def internal_error_handler(request: Request, exc: Exception) -> Response:
    """Anything unexpected: log it with its trace, answer without one."""
    log.error("unhandled_error", path=request.url.path, exc_info=exc)
    return Response(error_body(500, "internal error; see the server log"), status_code=500)


EXCEPTION_HANDLERS = {
    DomainError: domain_error_handler,
    Overloaded: overloaded_handler,
    HTTPException: http_exception_handler,
    OperationalError: outage_handler,
    InterfaceError: outage_handler,
    DBAPIError: outage_handler,
    RedisConnectionError: outage_handler,
    RedisTimeoutError: outage_handler,
    ConnectionError: outage_handler,
    OSError: outage_handler,
    RecursionError: too_deep_handler,
    Exception: internal_error_handler,
}
