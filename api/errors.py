"""Map errors to JSON responses with a clear message: 4xx for the caller, 503 for outages."""

from __future__ import annotations

import contextlib

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import Scope

from api.body_fields import unknown_field_detail
from domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    UnknownModel,
)
from ml.batcher import Overloaded

log = structlog.get_logger("api")

_STATUS = {
    InvalidInput: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    ServiceUnavailable: 503,
}


def error_body(status: int, detail: str, **extra: object) -> dict[str, object]:
    """The one error shape every endpoint uses."""
    return {"status_code": status, "detail": detail, **extra}


def domain_error_handler(_: Request, exc: DomainError) -> Response:
    """Domain errors carry user-safe messages; an outage adds a hint when to retry."""
    status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 400)
    if isinstance(exc, IntegrityError):
        status = 500
    headers = {"Retry-After": "2"} if status == 503 else None
    if status == 503:
        log.warning("service_unavailable", error=str(exc))
    return Response(error_body(status, str(exc)), status_code=status, headers=headers)


def overloaded_handler(_: Request, exc: Exception) -> Response:
    """The inference queue is full: shed load with 503 and a hint when to retry."""
    return Response(error_body(503, str(exc)), status_code=503, headers={"Retry-After": "1"})


def http_exception_handler(request: Request, exc: HTTPException) -> Response:
    """Litestar's own 4xx (validation, 404 route, 405, 413) in the same shape; an unknown
    field in a JSON body is named with the fields accepted there."""
    extra = getattr(exc, "extra", None)
    detail = _unknown_field(request, extra) if exc.status_code == 400 else None
    body = error_body(exc.status_code, detail or exc.detail)
    if extra:
        body["errors"] = extra
    return Response(body, status_code=exc.status_code, headers=exc.headers)


def _unknown_field(request: Request, errors: object) -> str | None:
    """The body type comes from the route's signature: every body struct gets the answer."""
    try:
        param = request.route_handler.parsed_fn_signature.parameters["data"]
    except (AttributeError, KeyError, LookupError):
        return None
    return unknown_field_detail(param.annotation, errors)


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
    RecursionError: too_deep_handler,
    Exception: internal_error_handler,
}


async def learn_known_models(exc: Exception, scope: Scope) -> None:
    """Read the registered names into an unknown model's message before it is answered.

    An ``after_exception`` hook: it runs before the (synchronous) handler, and may await.
    """
    if not isinstance(exc, UnknownModel) or exc.known is not None:
        return
    services = getattr(scope["litestar_app"].state, "services", None)
    if services is None:
        return
    with contextlib.suppress(DomainError):  # PostgreSQL went away: the name alone answers
        exc.learn(await services.queries.model_names())


AFTER_EXCEPTION = [learn_known_models]


def error_response(request: Request, exc: Exception) -> Response:
    """The response the app's handler for ``exc``'s type gives (for errors met outside a route).

    The nearest class in ``exc``'s MRO wins, as in Litestar; ``Exception`` catches the rest.
    """
    handler = next(EXCEPTION_HANDLERS[c] for c in type(exc).__mro__ if c in EXCEPTION_HANDLERS)
    return handler(request, exc)  # type: ignore[operator]
