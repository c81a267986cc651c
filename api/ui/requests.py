"""Console page of pending promotion requests (four eyes), each with an Approve form that takes the
API's own path (the ApprovePromotion handler) as the key logged in to the console."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api.auth import event_metadata
from api.deps import Bus, Port
from api.ui.session import page
from domain import names
from domain.errors import Conflict, Forbidden, InvalidInput
from domain.gates.ports import GateReader
from domain.names import MAX_REASON
from domain.registry.commands import ApprovePromotion

PAGE = "/ui/promotion-requests"
_STATUS = {InvalidInput: 400, Forbidden: 403, Conflict: 409}


class RequestPages(Controller):
    """Promotion requests waiting for a second key."""

    path = "/"
    include_in_schema = False

    @get("/promotion-requests")
    async def requests(self, request: Request, gate_queries: Port[GateReader]) -> Template:
        """Every open request: who asked, who approved, until when; an Approve form for operators."""
        return await _listing(request, gate_queries)

    @post(
        "/models/{name:str}/versions/{version:str}/approve",
        opt={"console_role": "operator"},
        status_code=303,
    )
    async def approve(
        self,
        request: Request,
        bus: Bus,
        gate_queries: Port[GateReader],
        name: FromPath[str],
        version: FromPath[str],
    ) -> Redirect | Template:
        """Approve through the API's handler; back to the list, or the list with the refusal."""
        form = await request.form()
        reason = (form.get("reason") or "").strip() or None
        try:
            if not reason:
                raise InvalidInput("give a reason to approve (it is recorded in the log)")
            await bus.handle(
                ApprovePromotion(
                    model_name=names.check_model_name(name),
                    model_version=names.check_version(version),
                    reason=reason,
                    metadata=event_metadata(request),
                )
            )
        except (InvalidInput, Forbidden, Conflict) as exc:
            status = next(code for cls, code in _STATUS.items() if isinstance(exc, cls))
            return await _listing(request, gate_queries, status, str(exc))
        return Redirect(PAGE, status_code=303)


async def _listing(
    request: Request, gate_queries: GateReader, status: int = 200, error: str | None = None
) -> Template:
    rows = await gate_queries.pending_promotions(datetime.now(UTC))
    return page(
        request,
        "promotion_requests.html",
        status,
        rows=rows,
        error=error,
        max_reason=MAX_REASON,
    )
