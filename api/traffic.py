"""Traffic endpoints: a model's capture policy (GET/PUT) and POST /feedback (true labels)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.params import FromPath, JSONBody

from api.auth import event_metadata
from api.deps import Bus
from api.schemas import Reason
from domain.traffic.commands import GetCapturePolicy, RecordFeedback, SetCapturePolicy
from domain.traffic.policy import (
    DEFAULT_RETENTION_DAYS,
    MAX_FEEDBACK,
    MAX_PER_S,
    MAX_RETENTION_DAYS,
)

# As the API hands ids out, plus ".<i>" for image i of a several-image v2 request.
RequestId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._:-]{1,72}$")]
Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
PerSecond = Annotated[float, msgspec.Meta(gt=0.0, le=MAX_PER_S)]
Days = Annotated[int, msgspec.Meta(ge=1, le=MAX_RETENTION_DAYS)]
Label = Annotated[int, msgspec.Meta(ge=0)]


class CapturePolicyRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """PUT /models/{name}/capture-policy: fraction 0 stops capture."""

    fraction: Fraction
    max_per_s: PerSecond
    retention_days: Days = DEFAULT_RETENTION_DAYS
    reason: Reason | None = None


class CapturePolicyResponse(msgspec.Struct, frozen=True):
    """A model's capture policy; ``changed`` is false when a PUT repeated the current one."""

    model_name: str
    fraction: float
    max_per_s: float
    retention_days: int
    changed: bool | None = None


class Feedback(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The true label (class index) of an answered request, by its request_id."""

    request_id: RequestId
    label: Label


class FeedbackResponse(msgspec.Struct, frozen=True):
    """How many labels were given, and how many were new (a repeat of the same label is not)."""

    received: int
    labelled: int


class CaptureController(Controller):
    """A model's capture policy."""

    path = "/models/{name:str}/capture-policy"
    tags = ["traffic"]

    @get("/", summary="A model's capture policy")
    async def get_policy(self, bus: Bus, name: FromPath[str]) -> CapturePolicyResponse:
        """Fraction, max per second per API process, retention (fraction 0: none set)."""
        p = await bus.handle(GetCapturePolicy(model_name=name))
        return CapturePolicyResponse(name, p.fraction, p.max_per_s, p.retention_days)

    @put("/", status_code=200, summary="Set a model's capture policy", opt={"role": "operator"})
    async def set_policy(
        self, request: Request, bus: Bus, name: FromPath[str], data: JSONBody[CapturePolicyRequest]
    ) -> CapturePolicyResponse:
        """Record CapturePolicySet; every API process follows it within about a second."""
        cmd = SetCapturePolicy(
            model_name=name,
            fraction=data.fraction,
            max_per_s=data.max_per_s,
            retention_days=data.retention_days,
            reason=data.reason,
            metadata=event_metadata(request),
        )
        recorded = await bus.handle(cmd)
        p = await bus.handle(GetCapturePolicy(model_name=name))
        return CapturePolicyResponse(
            name, p.fraction, p.max_per_s, p.retention_days, changed=bool(recorded)
        )


@post(
    "/feedback",
    status_code=200,
    tags=["traffic"],
    summary="Record true labels of answered requests",
    opt={"role": "predictor"},
)
async def feedback(
    bus: Bus,
    data: JSONBody[
        Annotated[list[Feedback], msgspec.Meta(min_length=1, max_length=MAX_FEEDBACK)] | Feedback
    ],
) -> FeedbackResponse:
    """All or none: unknown or expired ids 404, labels outside the model's classes or an id
    twice 400, a different label than the first one given 409 (the first label stands)."""
    items = data if isinstance(data, list) else [data]
    labelled = await bus.handle(RecordFeedback(items=[(f.request_id, f.label) for f in items]))
    return FeedbackResponse(received=len(items), labelled=labelled)
