"""The console's session: an API key in an HttpOnly, SameSite=Strict cookie, a CSRF token tied to
it, and the guard that applies the API's roles (api/access.py) to every console page and form.

The cookie holds ``<session id>:<key>``. A form's CSRF token is an HMAC of the session id under the
key itself: it needs no server secret (so every API process accepts it), it changes with each
login, and a token taken from another session (another id, or another key) does not verify.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.response import Redirect, Template

from api.access import Access
from domain.keys.aggregate import KeyIdentity, role_allows

COOKIE = "iep_console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
PREFIX = "/ui"
SESSION_S = 8 * 3600  # the cookie's lifetime; a revoked key stops working at once anyway
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# No inline script or style: the pages load htmx and the stylesheet from /ui/static only.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class LoginRequired(NotAuthorizedException):
    """No session, or its key is no longer active: the console sends the viewer to the login."""


def csrf_token(session_id: str, key: str) -> str:
    """The CSRF token of a session: HMAC-SHA-256 of its id under its key."""
    return hmac.new(key.encode(), f"console-csrf:{session_id}".encode(), hashlib.sha256).hexdigest()


def read_cookie(value: str | None) -> tuple[str, str] | None:
    """(session id, key) from the cookie, None when absent or malformed."""
    sid, sep, key = (value or "").partition(":")
    if not sep or len(sid) < 16 or not key or len(key) > 512:
        return None
    return sid, key


def session_cookie(request: Request, key: str) -> Cookie:
    """A new session for ``key``: HttpOnly, SameSite=Strict, Secure over https."""
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    return Cookie(
        key=COOKIE,
        value=f"{secrets.token_urlsafe(24)}:{key}",
        path=PREFIX,
        max_age=SESSION_S,
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a console path only, never another site."""
    plain = target and "\\" not in target and "://" not in target and "\n" not in target
    if plain and target.startswith(f"{PREFIX}/"):
        return target
    return f"{PREFIX}/models"


def _same_origin(connection: ASGIConnection) -> bool:
    """A browser's Origin header, when sent, must name this server."""
    origin = connection.headers.get("origin")
    if origin is None:  # not a browser, or an old one: the CSRF token still decides
        return True
    host = connection.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


async def console_guard(connection: ASGIConnection, route_handler: BaseRouteHandler) -> None:
    """Who is viewing (their key from the cookie), their role against the page's, and for a form
    the CSRF token of their session. Sets state.actor (the events' actor), role and csrf."""
    need = route_handler.opt.get("console_role", "reader")
    method = connection.scope["method"]
    if method not in SAFE_METHODS and not _same_origin(connection):
        raise PermissionDeniedException("this form was sent from another site")
    if need == "public":
        return
    access: Access = connection.app.state.access
    parsed = read_cookie(connection.cookies.get(COOKIE))
    if parsed is None:
        raise LoginRequired("log in with an API key to use the console")
    sid, key = parsed
    identity = await access.identify(key)
    if identity is None:
        raise LoginRequired("the key of this session is no longer active; log in again")
    access.limit(identity.key_name)
    expected = csrf_token(sid, key)
    state = connection.state
    state.actor, state.role, state.csrf = identity.key_name, identity.role, expected
    if not role_allows(identity.role, need):
        raise PermissionDeniedException(
            f"key {identity.key_name!r} has role {identity.role!r}; this needs {need!r}"
        )
    if method not in SAFE_METHODS:
        sent = connection.headers.get(CSRF_HEADER)
        if sent is None and isinstance(connection, Request):
            sent = (await connection.form()).get(CSRF_FIELD)
        if not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
            raise PermissionDeniedException(
                "the form's CSRF token does not belong to this session; reload the page and retry"
            )


def viewer(request: Request) -> KeyIdentity | None:
    """The logged-in viewer of this request (set by the guard), None on public pages."""
    name = getattr(request.state, "actor", None)
    role = getattr(request.state, "role", None)
    return KeyIdentity(key_name=name, role=role) if name and role else None


def page(request: Request, template: str, status: int = 200, **context: Any) -> Template:
    """A console page: the template with the viewer, what they may do, and their CSRF token."""
    who = viewer(request)
    role = who.role if who else None
    return Template(
        template_name=template,
        context={
            "viewer": who,
            "can_operate": bool(role and role_allows(role, "operator")),
            "is_admin": bool(role and role_allows(role, "admin")),
            "csrf": getattr(request.state, "csrf", ""),
            "csrf_field": CSRF_FIELD,
            **context,
        },
        status_code=status,
        headers=SECURITY_HEADERS,
    )


def login_required_handler(request: Request, exc: NotAuthorizedException) -> Response:
    """Pages go to the login form (and back after it); htmx and forms get a 401 page."""
    if request.method in SAFE_METHODS and "hx-request" not in request.headers:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        redirect = Redirect(f"{PREFIX}/login", query_params={"next": target})
        redirect.delete_cookie(COOKIE, path=PREFIX)
        return redirect
    return page(request, "error.html", 401, title="Log in again", message=exc.detail)


def refused_handler(request: Request, exc: PermissionDeniedException) -> Response:
    """403 as a page that says why."""
    return page(request, "error.html", 403, title="Not allowed", message=exc.detail)
