"""Online handlers on fakes: shadow and canary started, judged, stepped, aborted, promoted,
resumed from the log, and the refusals (two canaries, a shadow of prod, unknown versions)."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from domain.errors import (
    ConcurrencyConflict,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    UnknownModel,
)
from domain.online.commands import (
    AbortCanary,
    EvaluateOnline,
    GetOnline,
    RecordOutcomes,
    StartCanary,
    StartShadow,
    StopShadow,
    decode_outcomes,
    encode_outcomes,
)
from domain.online.handlers import (
    abort_canary,
    evaluate_online,
    online_state,
    record_outcomes,
    start_canary,
    start_shadow,
    stop_shadow,
)
from domain.online.judge import Counts
from domain.online.ports import OnlinePorts
from domain.online.state import evolve, fold
from domain.registry.commands import (
    ApprovePromotion,
    DemoteModelVersion,
    PromoteModelVersion,
    SetGatePolicy,
)
from domain.registry.gate_policy import GatePolicy
from domain.registry.handlers import change_version, promote_model_version
from events.base import EventMetadata, RecordedEvent
from events.online import (
    CanaryAborted,
    CanaryCompleted,
    CanaryStarted,
    CanaryStepped,
    Margins,
    PairedOutcome,
    ShadowStarted,
    ShadowStopped,
    ShadowVerdict,
)
from events.registry import ModelVersionPromoted, PromotionRequested
from tests.unit.wiring import RegistryFakes

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="tester")
EQUAL = Counts(  # 8,000 labelled pairs, no difference, quick and error-free
    outcomes=8000,
    agree=7600,
    answered=8000,
    labelled=8000,
    prod_right=7600,
    candidate_right=7600,
    candidate_only_right=200,
    prod_only_right=200,
    timed=8000,
    slower=800,
    prod_p95_ms=10.0,
    candidate_p95_ms=10.5,
)
WORSE = Counts(  # 3 points worse
    outcomes=2000,
    agree=1840,
    answered=2000,
    labelled=2000,
    prod_right=1900,
    candidate_right=1840,
    candidate_only_right=40,
    prod_only_right=100,
    timed=2000,
    slower=200,
    prod_p95_ms=10.0,
    candidate_p95_ms=10.5,
)


class FakeOnlineLog:
    """online-<model> streams in memory (a save evolves the state in place, as the real one)."""

    def __init__(self, clock) -> None:
        self.streams: dict[str, list[RecordedEvent]] = {}
        self.clock = clock

    async def load(self, model_name):
        return fold(model_name, list(self.streams.get(model_name, [])))

    async def save(self, state, events, metadata):
        stream = self.streams.setdefault(state.model_name, [])
        if len(stream) != state.stream_version:
            raise ConcurrencyConflict(f"online-{state.model_name} moved")
        out = []
        for e in events:
            r = RecordedEvent(
                position=len(stream) + 1,
                stream_id=f"online-{state.model_name}",
                stream_version=len(stream) + 1,
                event_id=uuid.uuid4(),
                recorded_at=self.clock.now(),
                metadata=metadata,
                event=e,
            )
            stream.append(r)
            evolve(state, r)
            out.append(r)
        return out

    async def running(self):
        states = [await self.load(m) for m in self.streams]
        return [s for s in states if s.shadow or s.canary]

    def events(self, model="m"):
        return [r.event for r in self.streams.get(model, [])]


class FakeOutcomes:
    """Counts per run (and per step) set by the test; recorded rows kept by key."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], PairedOutcome] = {}
        self.by_run: dict[str, Counts] = {}
        self.by_step: dict[tuple[str, int], int] = {}  # outcomes the candidate served
        self.prod_served: dict[tuple[str, int], int] = {}  # prod's requests paired in the step

    async def record(self, rows):
        before = len(self.rows)
        for r in rows:
            self.rows.setdefault((r.run_id, r.request_id), r)
        return len(self.rows) - before

    async def counts(self, run_id, latency_margin, step=None):
        if step is not None:
            cand = self.by_step.get((run_id, step), 0)
            prod = self.prod_served.get((run_id, step), 0)
            return Counts(outcomes=cand + prod, candidate_served=cand)
        return self.by_run.get(run_id, Counts())


class Online:
    def __init__(self, reg: RegistryFakes) -> None:
        self.reg = reg
        self.log = FakeOnlineLog(reg.clock)
        self.outcomes = FakeOutcomes()

        async def promote(cmd):
            return await promote_model_version(cmd, reg.ports)

        self.ports = OnlinePorts(
            uow=reg.uow, log=self.log, outcomes=self.outcomes, clock=reg.clock, promote=promote
        )

    async def evaluate(self):
        return await evaluate_online(EvaluateOnline(model_name="m", metadata=META), self.ports)

    async def canary(self, **kw):
        cmd = StartCanary(model_name="m", version="v2", metadata=META, **kw)
        await start_canary(cmd, self.ports)
        return self.log.events()[-1].canary_id


@pytest.fixture
async def online() -> Online:
    reg = RegistryFakes()
    await reg.register("v1")
    await reg.register("v2", source="b.pt")
    await promote_model_version(
        PromoteModelVersion(model_name="m", model_version="v1", metadata=META), reg.ports
    )
    return Online(reg)


async def test_shadow_starts_repeats_and_stops(online: Online) -> None:
    cmd = StartShadow(model_name="m", version="v2", fraction=0.1, duration_s=60, metadata=META)
    await start_shadow(cmd, online.ports)
    assert await start_shadow(cmd, online.ports) == []  # the same shadow again: nothing new
    started = online.log.events()[0]
    assert isinstance(started, ShadowStarted) and started.prod_version == "v1"
    with pytest.raises(Conflict, match="already shadows v2"):
        await start_shadow(msgspec.structs.replace(cmd, fraction=0.5), online.ports)
    await stop_shadow(StopShadow(model_name="m", reason="seen enough", metadata=META), online.ports)
    state = await online_state(GetOnline(model_name="m"), online.ports)
    assert state.shadow is None and state.ended[0].outcome == "stopped"
    with pytest.raises(NotFound, match="no shadow running"):
        await stop_shadow(StopShadow(model_name="m", metadata=META), online.ports)


async def test_shadow_refusals(online: Online) -> None:
    def start(**kw):
        base = {"model_name": "m", "version": "v2", "metadata": META} | kw
        return start_shadow(StartShadow(**base), online.ports)

    with pytest.raises(Conflict, match="v1 is prod"):
        await start(version="v1")
    with pytest.raises(NotFound, match="no version 'v9'"):
        await start(version="v9")
    with pytest.raises(UnknownModel):
        await start(model_name="nope")
    with pytest.raises(InvalidInput, match="fraction"):
        await start(fraction=1.5)
    with pytest.raises(InvalidInput, match="alpha"):
        await start(margins=Margins(alpha=0.5))
    assert online.log.events() == []


async def test_shadow_verdicts_follow_the_outcomes_and_expire(online: Online) -> None:
    cmd = StartShadow(model_name="m", version="v2", fraction=0.1, duration_s=60, metadata=META)
    await start_shadow(cmd, online.ports)
    shadow_id = online.log.events()[0].shadow_id
    await online.evaluate()  # no outcomes yet: INCONCLUSIVE
    first = online.log.events()[-1]
    assert isinstance(first, ShadowVerdict) and first.verdict == "INCONCLUSIVE"
    assert await online.evaluate() == []  # unchanged and not yet due
    online.outcomes.by_run[shadow_id] = WORSE
    await online.evaluate()
    failed = online.log.events()[-1]
    assert failed.verdict == "FAIL" and failed.figures.candidate_accuracy == 0.92
    accuracy = next(k for k in failed.figures.checks if k.name == "accuracy")
    assert accuracy.outcome == "FAIL" and accuracy.upper < -0.01
    online.reg.clock.advance(61)
    await online.evaluate()
    assert isinstance(online.log.events()[-1], ShadowStopped)
    assert online.log.events()[-1].why == "expired"


async def test_shadow_stops_when_prod_changes(online: Online) -> None:
    await start_shadow(StartShadow(model_name="m", version="v2", metadata=META), online.ports)
    await online.reg.register("v3", source="a.pt", tags={"x": "y"})
    await promote_model_version(
        PromoteModelVersion(model_name="m", model_version="v3", metadata=META), online.reg.ports
    )
    await online.evaluate()
    assert online.log.events()[-1].why == "prod-changed"


async def test_canary_steps_and_promotes_past_require_gate(online: Online) -> None:
    policy = GatePolicy(require_gate=True, max_gate_age_s=86400)
    await change_version(
        SetGatePolicy(model_name="m", policy=policy, metadata=META), online.reg.ports
    )
    canary_id = await online.canary(steps=[20, 50, 100], min_requests=100)
    assert await online.evaluate() == []  # too few requests at 20%
    online.outcomes.by_run[canary_id] = EQUAL
    for step in range(3):
        online.outcomes.by_step[(canary_id, step)] = 100
    await online.evaluate()
    await online.evaluate()
    stepped = [e for e in online.log.events() if isinstance(e, CanaryStepped)]
    assert [(e.step, e.share) for e in stepped] == [(1, 50), (2, 100)]
    await online.evaluate()
    done = online.log.events()[-1]
    assert isinstance(done, CanaryCompleted) and done.canary_id == canary_id
    promoted = online.reg.events()[-1]
    assert isinstance(promoted, ModelVersionPromoted)
    assert (promoted.model_version, promoted.canary_id) == ("v2", canary_id)
    assert (await online_state(GetOnline(model_name="m"), online.ports)).canary is None


async def test_a_step_counts_the_requests_the_candidate_served(online: Online) -> None:
    # Prod's paired requests are evidence, not the candidate taking its share of the traffic.
    canary_id = await online.canary(steps=[20, 100], min_requests=100)
    online.outcomes.by_run[canary_id] = EQUAL
    online.outcomes.by_step[(canary_id, 0)] = 99
    online.outcomes.prod_served[(canary_id, 0)] = 400
    assert await online.evaluate() == []
    assert not any(isinstance(e, CanaryStepped) for e in online.log.events())
    online.outcomes.by_step[(canary_id, 0)] = 100
    await online.evaluate()
    stepped = [e for e in online.log.events() if isinstance(e, CanaryStepped)]
    assert [(e.step, e.share) for e in stepped] == [(1, 100)]


async def test_with_four_eyes_a_passed_canary_waits_for_another_key(online: Online) -> None:
    # A canary is one person's decision: under approvals_required it files the starter's request.
    policy = GatePolicy(require_gate=True, approvals_required=2)
    await change_version(
        SetGatePolicy(model_name="m", policy=policy, metadata=META), online.reg.ports
    )
    cmd = StartCanary(
        model_name="m",
        version="v2",
        steps=[100],
        min_requests=100,
        metadata=EventMetadata(actor="alice"),
    )
    await start_canary(cmd, online.ports)
    canary_id = online.log.events()[-1].canary_id
    online.outcomes.by_run[canary_id] = EQUAL
    online.outcomes.by_step[(canary_id, 0)] = 100
    await online.evaluate()
    done = online.log.events()[-1]
    assert isinstance(done, CanaryCompleted) and done.approval_request is not None
    asked = online.reg.events()[-1]
    assert isinstance(asked, PromotionRequested) and asked.canary_id == canary_id
    assert (asked.request_id, asked.canary_prod) == (done.approval_request, "v1")
    assert not any(
        isinstance(e, ModelVersionPromoted) and e.model_version == "v2" for e in online.reg.events()
    )
    ended = (await online_state(GetOnline(model_name="m"), online.ports)).ended[0]
    assert ended.outcome == "APPROVAL-PENDING" and "waits for approval" in ended.why

    def approve(actor: str) -> ApprovePromotion:
        meta = EventMetadata(actor=actor)
        return ApprovePromotion(model_name="m", model_version="v2", metadata=meta)

    with pytest.raises(Forbidden, match="four eyes"):
        await promote_model_version(approve("alice"), online.reg.ports)
    await promote_model_version(approve("bob"), online.reg.ports)
    promoted = online.reg.events()[-1]
    assert isinstance(promoted, ModelVersionPromoted)
    assert (promoted.canary_id, promoted.requested_by, promoted.approved_by) == (
        canary_id,
        "alice",
        ["bob"],
    )


async def test_a_canary_request_lapses_when_prod_moves(online: Online) -> None:
    policy = GatePolicy(approvals_required=2)
    await change_version(
        SetGatePolicy(model_name="m", policy=policy, metadata=META), online.reg.ports
    )
    canary_id = await online.canary(steps=[100], min_requests=1)
    online.outcomes.by_run[canary_id] = EQUAL
    online.outcomes.by_step[(canary_id, 0)] = 1
    await online.evaluate()
    demote = DemoteModelVersion(model_name="m", model_version="v1", metadata=META)
    await change_version(demote, online.reg.ports)
    approve = ApprovePromotion(
        model_name="m", model_version="v2", metadata=EventMetadata(actor="bob")
    )
    with pytest.raises(Conflict, match="prod is now None; run the canary again"):
        await promote_model_version(approve, online.reg.ports)


async def test_a_worse_candidate_is_aborted_and_prod_unchanged(online: Online) -> None:
    canary_id = await online.canary()
    online.outcomes.by_run[canary_id] = WORSE
    await online.evaluate()
    aborted = online.log.events()[-1]
    assert isinstance(aborted, CanaryAborted) and aborted.check == "accuracy"
    assert "accuracy FAIL" in aborted.why and aborted.figures.labelled == 2000
    assert not any(
        isinstance(e, ModelVersionPromoted) and e.model_version == "v2" for e in online.reg.events()
    )


async def test_the_last_step_needs_a_pass_and_max_duration_aborts(online: Online) -> None:
    canary_id = await online.canary(steps=[100], min_requests=10, max_duration_s=30)
    online.outcomes.by_step[(canary_id, 0)] = 50  # enough requests, no labels: INCONCLUSIVE
    assert await online.evaluate() == []
    online.reg.clock.advance(31)
    await online.evaluate()
    aborted = online.log.events()[-1]
    assert aborted.check == "max-duration" and "INCONCLUSIVE" in aborted.why


async def test_two_canaries_refused_and_abort_by_hand(online: Online) -> None:
    await online.canary()
    with pytest.raises(Conflict, match="one canary per model"):
        await online.canary()
    await abort_canary(
        AbortCanary(model_name="m", reason="changed my mind", metadata=META), online.ports
    )
    assert online.log.events()[-1].check == "stopped"
    with pytest.raises(NotFound, match="no canary running"):
        await abort_canary(AbortCanary(model_name="m", metadata=META), online.ports)
    await online.canary()  # a new one after the abort is fine
    assert sum(isinstance(e, CanaryStarted) for e in online.log.events()) == 2


async def test_canary_refusals(online: Online) -> None:
    for kw, err in (
        ({"version": "v1"}, Conflict),
        ({"steps": [50, 20, 100]}, InvalidInput),
        ({"steps": [5, 25]}, InvalidInput),
        ({"min_requests": 0}, InvalidInput),
        ({"max_duration_s": 0}, InvalidInput),
    ):
        base = {"model_name": "m", "version": "v2", "metadata": META} | kw
        with pytest.raises(err):
            await start_canary(StartCanary(**base), online.ports)
    assert online.log.events() == []


async def test_a_concurrent_second_canary_loses_on_the_stream_version(online: Online) -> None:
    state = await online.log.load("m")
    await online.canary()
    with pytest.raises(ConcurrencyConflict):
        await online.log.save(state, [online.log.events()[0]], META)


async def test_resume_after_promotion_before_completion(online: Online) -> None:
    # A worker promoted, then died before CanaryCompleted: the next one completes from the log.
    canary_id = await online.canary(steps=[100], min_requests=1)
    await promote_model_version(
        PromoteModelVersion(model_name="m", model_version="v2", canary_id=canary_id, metadata=META),
        online.reg.ports,
    )
    await online.evaluate()
    assert isinstance(online.log.events()[-1], CanaryCompleted)


async def test_canary_aborts_when_prod_changes_under_it(online: Online) -> None:
    await online.reg.register("v3", source="a.pt", tags={"x": "y"})
    await online.canary()
    await promote_model_version(
        PromoteModelVersion(model_name="m", model_version="v3", metadata=META), online.reg.ports
    )
    await online.evaluate()
    assert online.log.events()[-1].check == "prod-changed"


async def test_outcomes_recorded_once_and_round_trip(online: Online) -> None:
    from datetime import UTC, datetime

    row = PairedOutcome(
        run_id="r",
        request_id="q1",
        model_name="m",
        prod_version="v1",
        candidate_version="v2",
        prod_prediction=3,
        candidate_prediction=None,
        prod_latency_ms=2.0,
        candidate_latency_ms=None,
        at=datetime(2030, 1, 1, tzinfo=UTC),
    )
    assert decode_outcomes(encode_outcomes([row])) == [row]
    assert await record_outcomes(RecordOutcomes(rows=[row, row]), online.ports) == 1
    assert await record_outcomes(RecordOutcomes(rows=[row]), online.ports) == 0
