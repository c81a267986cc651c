"""Console forms that change prod: promote (with the gate's status up front) and roll back. Both
take the API's own path (api.registry), so the same handlers, rules and events apply."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api import registry
from api.deps import Bus, Config, Port
from api.ui.session import page, viewer
from bootstrap import Settings
from domain import names
from domain.console.promotion import gate_status, refusal_message
from domain.console.views import ConsoleReader
from domain.errors import Conflict, Forbidden, InvalidInput
from domain.keys.aggregate import role_allows
from domain.keys.ports import KeyReader
from domain.names import MAX_REASON
from domain.registry.commands import GetModel
from domain.registry.ports import RegistryReader

Operator = {"console_role": "operator"}
GATES_READ = 200  # the candidate's newest finished gates the page judges (the rule's evidence)
KEYS_READ = 200  # keys scanned for the names of those who may force
_STATUS = {InvalidInput: 400, Forbidden: 403, Conflict: 409}


async def _form(request: Request) -> tuple[str | None, bool, bool]:
    """The form's reason, its confirmation box and its force box."""
    form = await request.form()
    reason = (form.get("reason") or "").strip() or None
    return reason, form.get("confirm") == "yes", form.get("force") == "yes"


async def _forcers(keys: KeyReader, settings: Settings, role: str) -> list[str]:
    """Names of active keys that may force (role ``role`` or above): whom to ask."""
    stored = await keys.list_keys(None, KEYS_READ)
    able = {k.key_name for k in stored if k.active and role_allows(k.role, role)}
    able |= {n for n, r in settings.security.api_keys.values() if role_allows(r, role)}
    return sorted(able)


class PromotionPages(Controller):
    """Promote and roll back, each behind a confirmation page that asks for a reason."""

    path = "/"
    include_in_schema = False

    async def _promote_page(
        self,
        request: Request,
        deps: tuple[Bus, RegistryReader, ConsoleReader, KeyReader, Settings],
        name: str,
        version: str,
        *,
        status: int = 200,
        error: Exception | None = None,
        reason: str = "",
    ) -> Template:
        bus, queries, console, keys, settings = deps
        v = await queries.get_version(name, version)
        state = await bus.handle(GetModel(model_name=name))
        outcomes = await console.candidate_gates(name, version, GATES_READ)
        who = viewer(request)
        role = who.role if who else None
        forcers = await _forcers(keys, settings, state.policy.force_role)
        gate = gate_status(state, version, outcomes, datetime.now(UTC), role, forcers)
        message = refusal_message(error, gate, role) if error else None
        return page(
            request,
            "promote.html",
            status,
            name=name,
            version=v,
            prod=state.prod,
            gate=gate,
            advice=gate.advice(role) if gate.refusal else None,
            error=message,
            reason=reason,
            max_reason=MAX_REASON,
        )

    @get("/models/{name:str}/versions/{version:str}/promote", opt=Operator)
    async def confirm_promote(
        self,
        request: Request,
        bus: Bus,
        queries: Port[RegistryReader],
        console: Port[ConsoleReader],
        keys: Port[KeyReader],
        settings: Config,
        name: FromPath[str],
        version: FromPath[str],
    ) -> Template:
        """Say whether a gate is required and has passed; ask for a reason and a confirmation."""
        name, version = names.check_model_name(name), names.check_version(version)
        deps = (bus, queries, console, keys, settings)
        return await self._promote_page(request, deps, name, version)

    @post("/models/{name:str}/versions/{version:str}/promote", status_code=303, opt=Operator)
    async def promote(
        self,
        request: Request,
        bus: Bus,
        queries: Port[RegistryReader],
        console: Port[ConsoleReader],
        keys: Port[KeyReader],
        settings: Config,
        name: FromPath[str],
        version: FromPath[str],
    ) -> Redirect | Template:
        """Promote through the API's handler; back to the model, whose timeline shows it."""
        name, version = names.check_model_name(name), names.check_version(version)
        reason, confirmed, force = await _form(request)
        try:
            if not confirmed or not reason:
                raise InvalidInput("tick the confirmation and give a reason to promote")
            await registry.promote(bus, request, name, version, reason, force)
        except (InvalidInput, Forbidden, Conflict) as exc:
            status = next(code for cls, code in _STATUS.items() if isinstance(exc, cls))
            deps = (bus, queries, console, keys, settings)
            return await self._promote_page(
                request, deps, name, version, status=status, error=exc, reason=reason or ""
            )
        return Redirect(f"/ui/models/{name}", status_code=303)

    @get("/models/{name:str}/rollback", opt=Operator)
    async def confirm_rollback(
        self, request: Request, queries: Port[RegistryReader], name: FromPath[str]
    ) -> Template:
        """Ask for a reason and a confirmation before rolling back."""
        name = names.check_model_name(name)
        prod = await queries.require_prod(name)
        return page(
            request,
            "rollback.html",
            name=name,
            prod=prod,
            error=None,
            reason="",
            max_reason=MAX_REASON,
        )

    @post("/models/{name:str}/rollback", status_code=303, opt=Operator)
    async def rollback(
        self,
        request: Request,
        bus: Bus,
        queries: Port[RegistryReader],
        name: FromPath[str],
    ) -> Redirect | Template:
        """Roll back through the API's handler."""
        name = names.check_model_name(name)
        reason, confirmed, _ = await _form(request)
        try:
            if not confirmed or not reason:
                raise InvalidInput("tick the confirmation and give a reason to roll back")
            await registry.roll_back(bus, request, name, reason)
        except (InvalidInput, Conflict) as exc:
            return page(
                request,
                "rollback.html",
                400 if isinstance(exc, InvalidInput) else 409,
                name=name,
                prod=await queries.require_prod(name),
                error=str(exc),
                reason=reason or "",
                max_reason=MAX_REASON,
            )
        return Redirect(f"/ui/models/{name}", status_code=303)
