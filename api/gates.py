"""Gate endpoints: request a gate, read one, page a model's gates, read and set its gate policy."""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.params import FromPath, JSONBody

from api.auth import event_metadata
from api.deps import Bus, Config, Port
from api.pages import NEXT_PAGE_HEADER, Cursor, Limit, page_size, paged
from api.schemas import Reason
from domain import names
from domain.gates.commands import GetGatePolicy, RequestGate
from domain.gates.ports import GateReader
from domain.gates.views import GateView
from domain.registry.commands import ApprovePromotion, SetGatePolicy
from events.gates import GatePolicy, GateThresholds
from events.registry import ModelVersionPromoted, PromotionApproved


class GateRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /gates: compare a candidate with a baseline (on a dataset both were evaluated on)."""

    model_name: str
    candidate_version: str
    baseline_version: str
    dataset_id: str | None = None
    reason: Reason | None = None


class GateAccepted(msgspec.Struct, frozen=True):
    """202: the gate id to follow with GET /gates/{gate_id}."""

    gate_id: str
    status: str
    model_name: str
    candidate_version: str
    baseline_version: str
    dataset_id: str
    # Set when the dataset or its size will not clear a promotion (it names both datasets).
    warning: str | None = None


class ThresholdsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Per-model non-inferiority margins (docs/gates.md); omitted fields take the defaults."""

    max_accuracy_drop: float = 0.01
    max_latency_increase: float = 0.10
    alpha: float = 0.025
    min_images: int = 200


class PolicyRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """PUT /models/{name}/gate-policy: the whole policy (omitted fields take the defaults)."""

    thresholds: ThresholdsRequest = ThresholdsRequest()
    require_gate: bool = False
    max_gate_age_s: int = 86400
    auto_gate: bool = True
    auto_promote: bool = False
    gate_dataset: str | None = None
    min_gate_images: int = 0
    force_role: str = "admin"
    approvals_required: int = 1
    max_request_age_s: int = 86400
    on_inconclusive: Literal["block", "allow"] = "block"
    reason: Reason | None = None

    def policy(self) -> GatePolicy:
        """The policy this request sets."""
        t = GateThresholds(**msgspec.structs.asdict(self.thresholds))
        fields = msgspec.structs.asdict(self)
        fields.pop("reason")
        fields.pop("thresholds")
        return GatePolicy(thresholds=t, **fields)


class PolicyResponse(msgspec.Struct, frozen=True):
    """A model's gate policy; ``changed`` is false when the PUT repeated the current one."""

    model_name: str
    policy: GatePolicy
    changed: bool = False


class PromoteRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST .../promote: ``force`` overrides a required gate and needs a ``reason``."""

    reason: Reason | None = None
    force: bool = False


class ApproveRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST .../approve: why the approver agrees (recorded in the log)."""

    reason: Reason | None = None


class ApproveResponse(msgspec.Struct, frozen=True):
    """An approval: ``status`` is ``prod`` once the last approval promoted the version."""

    model_name: str
    model_version: str
    status: str
    requested_by: str
    approved_by: list[str]
    approvals_required: int


class GateController(Controller):
    """Regression gates, evaluated by the gate-evaluation consumer group."""

    path = "/gates"
    tags = ["gates"]

    @post("/", status_code=202, summary="Request a gate: candidate vs baseline on one dataset")
    async def request(
        self,
        request: Request,
        bus: Bus,
        data: JSONBody[GateRequest],
    ) -> GateAccepted:
        """Record GateRequested; the gate-evaluation group evaluates it."""
        cmd = RequestGate(
            model_name=data.model_name,
            candidate_version=data.candidate_version,
            baseline_version=data.baseline_version,
            dataset_id=data.dataset_id,
            reason=data.reason,
            metadata=event_metadata(request),
        )
        gate = await bus.handle(cmd)
        return GateAccepted(
            gate_id=gate.gate_id,
            status=gate.status or "requested",
            model_name=gate.model_name,
            candidate_version=gate.candidate_version,
            baseline_version=gate.baseline_version,
            dataset_id=gate.dataset_id,
            warning=gate.warning,
        )

    @get("/{gate_id:str}", summary="A gate: its status, and the verdict with every check")
    async def get_gate(self, gate_queries: Port[GateReader], gate_id: FromPath[str]) -> GateView:
        """Follow a gate until its status is passed, failed or errored."""
        return await gate_queries.get(gate_id)


class ModelGatesController(Controller):
    """A model's gates and gate policy."""

    path = "/models/{name:str}"
    tags = ["gates"]

    @get(
        "/gates",
        summary="A model's gates, newest first, a page at a time",
        response_headers=NEXT_PAGE_HEADER,
    )
    async def list_gates(
        self,
        gate_queries: Port[GateReader],
        settings: Config,
        name: FromPath[str],
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> Response[list[GateView]]:
        """More pages when the X-Next-Cursor header is set (pass it as ``cursor``)."""
        size = page_size(limit, settings)
        return paged(*await gate_queries.page_for_model(names.check_model_name(name), size, cursor))

    @get("/gate-policy", summary="A model's gate policy")
    async def get_policy(self, bus: Bus, name: FromPath[str]) -> PolicyResponse:
        """Thresholds, required and automatic gates."""
        policy = await bus.handle(GetGatePolicy(model_name=name))
        return PolicyResponse(model_name=name, policy=policy)

    # Loosening a policy (require_gate off) weakens every later promotion: admins only.
    @put(
        "/gate-policy", status_code=200, summary="Set a model's gate policy", opt={"role": "admin"}
    )
    async def set_policy(
        self,
        request: Request,
        bus: Bus,
        name: FromPath[str],
        data: JSONBody[PolicyRequest],
    ) -> PolicyResponse:
        """Record GatePolicySet on the model's stream (in its history)."""
        cmd = SetGatePolicy(
            model_name=name,
            policy=data.policy(),
            reason=data.reason,
            metadata=event_metadata(request),
        )
        result = await bus.handle(cmd)
        return PolicyResponse(model_name=name, policy=result.state.policy, changed=result.changed)

    # Who may promote may approve (operator); the approver must not be the requester.
    @post(
        "/versions/{version:str}/approve",
        status_code=200,
        summary="Approve a pending promotion request (four eyes)",
    )
    async def approve(
        self,
        request: Request,
        bus: Bus,
        name: FromPath[str],
        version: FromPath[str],
        data: JSONBody[ApproveRequest | None] = None,
    ) -> ApproveResponse:
        """Record PromotionApproved; the last approval needed also promotes (409/403 says why not)."""
        cmd = ApprovePromotion(
            model_name=names.check_model_name(name),
            model_version=names.check_version(version),
            reason=data.reason if data else None,
            metadata=event_metadata(request),
        )
        result = await bus.handle(cmd)
        events = [r.event for r in result.recorded]
        approved = next(e for e in events if isinstance(e, PromotionApproved))
        promoted = next((e for e in events if isinstance(e, ModelVersionPromoted)), None)
        pending = result.state.requests.get(version)
        return ApproveResponse(
            model_name=name,
            model_version=version,
            status="prod" if promoted else "approved",
            requested_by=approved.requested_by,
            approved_by=promoted.approved_by if promoted else list(pending.approved_by),
            approvals_required=result.state.policy.approvals_required
            if pending is None
            else pending.approvals_required,
        )
