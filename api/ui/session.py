"""The console's session: an opaque id in an HttpOnly, SameSite=Strict cookie, the session
itself on the server (domain/console/sessions.py, kept in PostgreSQL so every API process sees
it), a CSRF token tied to it, and the guard that applies the API's roles (api/access.py) to every
console page and form.

The cookie never holds the key: the login checks the key once and keeps its name, role and
SHA-256 with the session. The server ends a session when it is idle too long, too old, logged
out, or its key is revoked. A form's CSRF token is an HMAC under a random secret kept with the
session, so a token from another session does not verify and no process needs a shared secret.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.response import Redirect, Template

from api.access import Access, is_loopback
from bootstrap import Settings
from domain.console.sessions import (
    NewSession,
    SessionLimits,
    SessionStore,
    csrf_token,
    new_csrf_secret,
    new_session_id,
    session_hash,
)
from domain.keys.aggregate import KeyIdentity, hash_key, role_allows

# Browsers take a __Host- cookie only with Secure, Path=/ and no Domain: no other host, path
# or plain-http page can set or shadow it. Over plain http to a loopback API the prefix is
# impossible, so the cookie there has a plain name, scoped to /ui.
COOKIE = "__Host-iep_console"
PLAIN_COOKIE = "iep_console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
PREFIX = "/ui"
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
ENDED = (
    "this console session has ended (logged out, idle too long, past its time limit, or its "
    "key was revoked); log in again"
)


class LoginRequired(NotAuthorizedException):
    """No session, or it has ended: the console sends the viewer to the login."""


def _settings(connection: ASGIConnection) -> Settings:
    return connection.app.state.services.settings


def _store(connection: ASGIConnection) -> SessionStore:
    return connection.app.state.services.sessions


def limits(settings: Settings) -> SessionLimits:
    """When the server ends a session (CONSOLE_IDLE_S, CONSOLE_MAX_S)."""
    return SessionLimits(
        idle_s=settings.security.console_idle_s, max_s=settings.security.console_max_s
    )


def plain_cookie_allowed(settings: Settings) -> bool:
    """Whether a cookie without the __Host- prefix (and Secure) is taken: loopback http only."""
    mode = settings.security.console_secure_cookie
    return mode == "never" or (mode == "auto" and is_loopback(settings.api.host))


def secure_cookie(settings: Settings, request: Request) -> bool:
    """Whether this login's cookie is __Host- and Secure: unless loopback over plain http."""
    https = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    mode = settings.security.console_secure_cookie
    return mode == "always" or (mode == "auto" and (https or not plain_cookie_allowed(settings)))


def read_session(connection: ASGIConnection) -> str | None:
    """The SHA-256 of the request's session id, None when it carries no well-formed one."""
    raw = connection.cookies.get(COOKIE)
    if raw is None and plain_cookie_allowed(_settings(connection)):
        raw = connection.cookies.get(PLAIN_COOKIE)
    return session_hash(raw) if raw else None


async def start_session(request: Request, identity: KeyIdentity, key: str) -> Cookie:
    """Keep a new session for a checked key on the server; the cookie that names it."""
    settings = _settings(request)
    old = read_session(request)
    if old is not None:  # a new login never keeps the id a browser arrived with
        await _store(request).close(old)
    session_id = new_session_id()
    kept = NewSession(
        key_hash=hash_key(key),
        key_name=identity.key_name,
        role=identity.role,
        csrf_secret=new_csrf_secret(),
    )
    await _store(request).open(session_hash(session_id), kept, limits(settings))
    secure = secure_cookie(settings, request)
    return Cookie(
        key=COOKIE if secure else PLAIN_COOKIE,
        value=session_id,
        path="/" if secure else PREFIX,
        max_age=int(settings.security.console_max_s),
        httponly=True,
        samesite="strict",
        secure=secure,
    )


async def end_session(request: Request) -> None:
    """Delete this request's session on the server (logout)."""
    ended = getattr(request.state, "session_hash", None) or read_session(request)
    if ended is not None:
        await _store(request).close(ended)


def forget_cookies(response: Response) -> Response:
    """Tell the browser to drop the session cookie, under either name."""
    for name, path, secure in ((COOKIE, "/", True), (PLAIN_COOKIE, PREFIX, False)):
        # A browser ignores a __Host- cookie without Secure, its deletion included.
        response.set_cookie(
            Cookie(
                key=name,
                value="",
                path=path,
                max_age=0,
                expires=0,
                secure=secure,
                httponly=True,
                samesite="strict",
            )
        )
    return response


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
    """Who is viewing (their live session on the server), their role against the page's, and for
    a form the CSRF token of their session. Sets state.actor (the events' actor), role and csrf."""
    need = route_handler.opt.get("console_role", "reader")
    method = connection.scope["method"]
    if method not in SAFE_METHODS and not _same_origin(connection):
        raise PermissionDeniedException("this form was sent from another site")
    if need == "public":
        return
    access: Access = connection.app.state.access
    digest = read_session(connection)
    if digest is None:
        raise LoginRequired("log in with an API key to use the console")
    settings = _settings(connection)
    bootstrap = {hash_key(key): who for key, who in settings.security.api_keys.items()}
    session = await _store(connection).touch(digest, limits(settings), bootstrap)
    if session is None:
        client = connection.scope.get("client")
        # Bounds guessing, per address and shared by every API process.
        await access.limit(f"invalid-session@{client[0] if client else 'unknown'}")
        raise LoginRequired(ENDED)
    await access.limit(session.key_name)
    # A key of API_KEYS has no api_keys row for the database's guard to check the stored
    # name and role against: take them from the setting, never from the row.
    name, role = bootstrap.get(session.key_hash, (session.key_name, session.role))
    identity = KeyIdentity(key_name=name, role=role)
    expected = csrf_token(session.csrf_secret, digest)
    state = connection.state
    state.actor, state.role, state.csrf = identity.key_name, identity.role, expected
    state.session_hash = digest
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
        return forget_cookies(Redirect(f"{PREFIX}/login", query_params={"next": target}))
    return page(request, "error.html", 401, title="Log in again", message=exc.detail)


def refused_handler(request: Request, exc: PermissionDeniedException) -> Response:
    """403 as a page that says why."""
    return page(request, "error.html", 403, title="Not allowed", message=exc.detail)
