"""The web console under /ui: server-rendered pages (Jinja), htmx for live parts, no build step.

``console_routes()`` gives the routers that api/app.py registers and ``template_config()`` the
templates. Every console route is public to the API's header check and checked instead by
``console_guard`` (api/ui/session.py), which finds the cookie's session on the server and applies
the same roles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import structlog
from litestar import Request, Response, Router, get, post
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.params import QueryParameter
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from api.access import Access
from api.ui.models import ModelPages
from api.ui.online import OnlinePages
from api.ui.promotion import PromotionPages
from api.ui.requests import RequestPages
from api.ui.session import (
    PREFIX,
    console_guard,
    end_session,
    forget_cookies,
    login_required_handler,
    page,
    refused_handler,
    safe_next,
    start_session,
)
from api.ui.work import WorkPages
from domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
)

HERE = Path(__file__).resolve().parent.parent
TEMPLATES, STATIC = HERE / "templates", HERE / "static"
PUBLIC = {"role": "public", "console_role": "public"}
_STATUS = {
    InvalidInput: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    ServiceUnavailable: 503,
}
log = structlog.get_logger("console")
Next = Annotated[str | None, QueryParameter(max_length=2048)]


@get("/login", opt=PUBLIC)
async def login_form(request: Request, next: Next = None) -> Template:
    """The login form: an API key with at least the reader role."""
    return page(request, "login.html", next=safe_next(next), error=None)


@post("/login", opt=PUBLIC, status_code=303)
async def login(request: Request) -> Response:
    """Check the key as the API does and start a session on the server (the cookie names it)."""
    form = await request.form()
    key, target = (form.get("key") or "").strip(), safe_next(form.get("next"))
    access: Access = request.app.state.access
    address = request.client.host if request.client else "unknown"
    # As the API does: an uncached key spends a token of the address's lookup bucket first.
    identity = await access.identify(key, address) if key else None
    if identity is None:
        message = "that key names no active key" if key else "enter an API key"
        return page(request, "login.html", 401, next=target, error=message)
    log.info("console_login", actor=identity.key_name, role=identity.role)
    cookie = await start_session(request, identity, key)
    return Redirect(target, status_code=303, cookies=[cookie])


@post("/logout", status_code=303)
async def logout(request: Request) -> Response:
    """End the session on the server (the form carries its CSRF token, like every form)."""
    await end_session(request)
    return forget_cookies(Redirect(f"{PREFIX}/login", status_code=303))


def domain_error_page(request: Request, exc: DomainError) -> Response:
    """A refused request as a page with the API's status and message."""
    status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 400)
    if status == 503:
        log.warning("service_unavailable", error=str(exc))
    return page(request, "error.html", status, title="Refused", message=str(exc))


def http_error_page(request: Request, exc: HTTPException) -> Response:
    """Litestar's own refusals (bad query parameters, rate limit) as a page."""
    response = page(request, "error.html", exc.status_code, title="Refused", message=exc.detail)
    response.headers.update(exc.headers or {})
    return response


def internal_error_page(request: Request, exc: Exception) -> Response:
    """Anything unexpected: logged with its trace, shown without it."""
    log.error("unhandled_error", path=request.url.path, exc_info=exc)
    return page(request, "error.html", 500, title="Error", message="internal error; see the log")


def template_config() -> TemplateConfig:
    """Jinja templates of the console (autoescaped)."""
    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine)


def console_routes() -> list[Router]:
    """The console's pages and its static files (htmx, the stylesheet)."""
    pages = Router(
        path=PREFIX,
        route_handlers=[
            login_form,
            login,
            logout,
            ModelPages,
            OnlinePages,
            PromotionPages,
            WorkPages,
            RequestPages,
        ],
        guards=[console_guard],
        opt={"role": "public"},  # the API's access check steps aside; console_guard decides
        include_in_schema=False,
        exception_handlers={
            NotAuthorizedException: login_required_handler,
            PermissionDeniedException: refused_handler,
            DomainError: domain_error_page,
            HTTPException: http_error_page,
            Exception: internal_error_page,
        },
    )
    static = create_static_files_router(
        path=f"{PREFIX}/static",
        directories=[STATIC],
        opt=PUBLIC,
        cache_control=CacheControlHeader(max_age=3600),
        include_in_schema=False,
    )
    return [pages, static]
