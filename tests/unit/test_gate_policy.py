"""Gate policy at promotion: required, fresh, matching PASS gates; forced promotions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from domain.errors import Conflict, InvalidInput, NotFound
from domain.gates.aggregate import FAILED, PASSED, GateState
from domain.gates.triggers import auto_gate_id, auto_gate_request, auto_promotion
from domain.registry.commands import PromoteModelVersion, RecordRegistration, SetGatePolicy
from domain.registry.decisions import ModelState, decide, evolve, fold
from domain.registry.gate_policy import GateOutcome, check_promotion_allowed
from events.base import EventMetadata, RecordedEvent
from events.codec import decode_event, encode_event, event_type_name
from events.gates import GatePolicy, GateThresholds
from events.registry import GatePolicySet, ModelVersionPromoted

META = EventMetadata(actor="tester")

NOW = datetime(2030, 1, 2, 12, 0, tzinfo=UTC)
REQUIRED = GatePolicy(require_gate=True, max_gate_age_s=86400)


class Model:
    """In-memory driver of the registry aggregate; events go through the codec."""

    def __init__(self) -> None:
        self.state = ModelState(model_name="m")
        self.history: list[RecordedEvent] = []

    def run(self, command) -> list:
        events = decide(self.state, command)
        for e in events:
            r = RecordedEvent(
                position=len(self.history) + 1,
                stream_id="model-m",
                stream_version=self.state.stream_version + 1,
                event_id=uuid.uuid4(),
                recorded_at=NOW,
                metadata=EventMetadata(actor="alice"),
                event=decode_event(event_type_name(e), encode_event(e)),
            )
            self.history.append(r)
            evolve(self.state, r)
        return events

    def promote(self, version: str, **kw) -> list:
        return self.run(
            PromoteModelVersion(model_name="m", model_version=version, **kw, metadata=META)
        )


def _model(policy: GatePolicy | None = REQUIRED) -> Model:
    m = Model()
    for v, sha in (("v1", "a"), ("v2", "b"), ("v3", "c")):
        m.run(
            RecordRegistration(
                model_name="m",
                model_version=v,
                artifact_uri=f"m/{v}/model.pt",
                sha256=sha * 64,
                size_bytes=1,
            )
        )
    m.promote("v1")  # the first prod has nothing to be gated against
    if policy is not None:
        m.run(SetGatePolicy(model_name="m", policy=policy, metadata=META))
    return m


def _gate(candidate="v2", baseline="v1", verdict="PASS", age_s=60.0, model="m") -> GateOutcome:
    return GateOutcome(
        gate_id=str(uuid.uuid4()),
        model_name=model,
        candidate_version=candidate,
        baseline_version=baseline,
        verdict=verdict,
        decided_at=NOW - timedelta(seconds=age_s),
    )


def test_policy_is_an_event_folded_into_the_model() -> None:
    m = _model(None)
    assert m.state.policy == GatePolicy()
    assert m.state.policy.thresholds.max_accuracy_drop == 0.01
    assert m.state.policy.auto_gate and not m.state.policy.auto_promote
    policy = GatePolicy(thresholds=GateThresholds(max_accuracy_drop=0.02), require_gate=True)
    (e,) = m.run(SetGatePolicy(model_name="m", policy=policy, reason="stricter", metadata=META))
    assert isinstance(e, GatePolicySet)
    assert fold("m", m.history).policy == policy
    assert m.run(SetGatePolicy(model_name="m", policy=policy, metadata=META)) == []


@pytest.mark.parametrize(
    ("policy", "match"),
    [
        (GatePolicy(thresholds=GateThresholds(alpha=0.0)), "alpha"),
        (GatePolicy(thresholds=GateThresholds(max_accuracy_drop=1.5)), "max_accuracy_drop"),
        (GatePolicy(thresholds=GateThresholds(max_latency_increase=-1)), "latency"),
        (GatePolicy(max_gate_age_s=0), "max_gate_age_s"),
        (GatePolicy(thresholds=GateThresholds(alpha=0.3)), "one-sided"),
        (GatePolicy(thresholds=GateThresholds(min_images=-1)), "min_images"),
        (GatePolicy(on_inconclusive="maybe"), "on_inconclusive"),  # type: ignore[arg-type]
    ],
)
def test_invalid_policies_are_refused(policy: GatePolicy, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        _model(None).run(SetGatePolicy(model_name="m", policy=policy, metadata=META))


def test_policy_of_an_unknown_model_is_not_found() -> None:
    with pytest.raises(NotFound):
        Model().run(SetGatePolicy(model_name="m", policy=GatePolicy(), metadata=META))


def test_required_gate_refuses_a_promotion_without_one_and_says_what_to_run() -> None:
    m = _model()
    with pytest.raises(Conflict) as err:
        m.promote("v2", now=NOW)
    assert "just gate m v2 v1" in str(err.value)
    assert "no gate of v2" in str(err.value)
    assert m.state.prod == "v1"


def test_a_fresh_matching_pass_allows_it_and_is_recorded() -> None:
    m = _model()
    gate = _gate()
    (e,) = m.promote("v2", now=NOW, gates=(gate,))
    assert isinstance(e, ModelVersionPromoted)
    assert (e.gate_id, e.forced, e.previous_prod) == (gate.gate_id, False, "v1")
    assert m.state.prod == "v2"


@pytest.mark.parametrize(
    ("gate", "why"),
    [
        (_gate(age_s=2 * 86400), "old"),
        (_gate(baseline="v3"), "not to the current prod v1"),
        (_gate(verdict="FAIL"), "ended FAIL"),
        (_gate(verdict="ERRORED"), "ended ERRORED"),
        (_gate(candidate="v3"), "no gate of v2"),
        (_gate(model="other"), "no gate of v2"),
    ],
)
def test_stale_mismatched_or_failed_gates_do_not_count(gate: GateOutcome, why: str) -> None:
    m = _model()
    with pytest.raises(Conflict, match=why):
        m.promote("v2", now=NOW, gates=(gate,))
    assert m.state.prod == "v1"


def test_the_newest_fresh_pass_counts_among_others() -> None:
    m = _model()
    old_pass, errored, new_pass = _gate(age_s=3000), _gate(verdict="ERRORED"), _gate(age_s=100)
    (e,) = m.promote("v2", now=NOW, gates=(old_pass, errored, new_pass))
    assert e.gate_id == new_pass.gate_id


def test_a_fail_of_the_same_comparison_stands_against_passes_on_as_many_images() -> None:
    # Sizes unknown (older gates rows) count as equal: the FAIL stands.
    m = _model()
    fail = _gate(verdict="FAIL", age_s=10)
    with pytest.raises(Conflict, match=f"latest gate {fail.gate_id} ended FAIL"):
        m.promote("v2", now=NOW, gates=(_gate(age_s=3000), fail, _gate(age_s=100)))
    assert m.state.prod == "v1"


def test_a_forced_promotion_needs_a_reason_and_records_it() -> None:
    m = _model()
    with pytest.raises(InvalidInput, match="reason"):
        m.promote("v2", now=NOW, force=True)
    with pytest.raises(InvalidInput, match="reason"):
        m.promote("v2", now=NOW, force=True, reason="   ")
    (e,) = m.promote("v2", now=NOW, force=True, reason="hotfix for incident 42")
    assert e.forced is True
    assert e.force_reason == e.reason == "hotfix for incident 42"
    assert e.gate_id is None
    assert m.history[-1].metadata.actor == "alice"
    assert m.state.prod == "v2"


def test_without_require_gate_promotion_needs_no_gate_but_names_a_fresh_pass() -> None:
    m = _model(None)
    (e,) = m.promote("v2")
    assert (e.gate_id, e.forced) == (None, False)
    m = _model(None)
    gate = _gate()
    (e,) = m.promote("v2", now=NOW, gates=(gate,))
    assert e.gate_id == gate.gate_id


def test_an_auto_promotion_needs_its_gate_to_match_the_current_prod() -> None:
    # The gate compared v2 with v3, but prod is v1 now: it proves nothing about v2 vs prod.
    m = _model(None)
    gate = _gate(baseline="v3")
    with pytest.raises(Conflict, match=f"gate {gate.gate_id} is not a fresh PASS"):
        m.promote("v2", now=NOW, gates=(gate,), gate_id=gate.gate_id)
    good = _gate()
    (e,) = m.promote("v2", now=NOW, gates=(gate, good), gate_id=good.gate_id)
    assert e.gate_id == good.gate_id


def test_no_current_prod_or_repromoting_prod_needs_no_gate() -> None:
    assert check_promotion_allowed(REQUIRED, "m", "v2", None, (), NOW).forced is False
    m = _model()
    assert m.promote("v1", now=NOW) == []


def test_without_the_time_no_gate_counts() -> None:
    with pytest.raises(Conflict, match="just gate m v2 v1"):
        check_promotion_allowed(REQUIRED, "m", "v2", "v1", (_gate(),), None)


def test_old_promotion_payloads_decode_with_defaults() -> None:
    old = b'{"type":"ModelVersionPromoted","model_name":"m","model_version":"v1","reason":null}'
    e = decode_event("ModelVersionPromoted", old)
    assert (e.forced, e.force_reason, e.gate_id) == (False, None, None)


def test_an_evaluation_of_a_staging_version_starts_one_gate_against_prod() -> None:
    m = _model(None)
    req = auto_gate_request(m.state, "v2", "mnist-test", "job-1", from_gate=False)
    assert req is not None
    assert (req.candidate_version, req.baseline_version, req.dataset_id) == (
        "v2",
        "v1",
        "mnist-test",
    )
    assert req.auto and req.cause == "job-1"
    assert req.gate_id == auto_gate_id("job-1") != auto_gate_id("job-2")
    assert auto_gate_request(m.state, "v2", "d", "job-1", from_gate=True) is None
    assert auto_gate_request(m.state, "v1", "d", "job-1", from_gate=False) is None  # prod
    assert auto_gate_request(m.state, "v9", "d", "job-1", from_gate=False) is None  # unknown
    m.run(SetGatePolicy(model_name="m", policy=GatePolicy(auto_gate=False), metadata=META))
    assert auto_gate_request(m.state, "v2", "d", "job-1", from_gate=False) is None


def test_no_auto_gate_without_a_prod_version() -> None:
    m = Model()
    m.run(
        RecordRegistration(
            model_name="m",
            model_version="v1",
            artifact_uri="m/v1/model.pt",
            sha256="a" * 64,
            size_bytes=1,
        )
    )
    assert auto_gate_request(m.state, "v1", "d", "job-1", from_gate=False) is None


def _passed_gate(candidate: str = "v2", baseline: str = "v1", verdict: str = "PASS") -> GateState:
    g = GateState(gate_id=str(uuid.uuid4()), status=PASSED if verdict == "PASS" else FAILED)
    g.model_name, g.candidate_version, g.baseline_version = "m", candidate, baseline
    g.verdict, g.decided_at = verdict, NOW - timedelta(seconds=5)
    return g


def test_auto_promote_promotes_on_pass_with_the_gate_as_cause() -> None:
    m = _model(GatePolicy(auto_promote=True, require_gate=True))
    gate = _passed_gate()
    cmd = auto_promotion(m.state, gate, NOW, META)
    assert cmd is not None
    (e,) = m.run(cmd)
    assert (e.model_version, e.gate_id, e.forced) == ("v2", gate.gate_id, False)


def test_auto_promote_does_nothing_when_off_failed_or_prod_moved() -> None:
    off = _model(None)
    assert auto_promotion(off.state, _passed_gate(), NOW, META) is None
    m = _model(GatePolicy(auto_promote=True))
    assert auto_promotion(m.state, _passed_gate(verdict="FAIL"), NOW, META) is None
    assert auto_promotion(m.state, _passed_gate(baseline="v3"), NOW, META) is None
    m.promote("v2")
    assert auto_promotion(m.state, _passed_gate(), NOW, META) is None  # already prod


def test_an_inconclusive_gate_blocks_by_default_naming_the_evidence_needed() -> None:
    undecided = msgspec.structs.replace(
        _gate(verdict="INCONCLUSIVE"), needed="accuracy: about 4,200 more labelled images"
    )
    with pytest.raises(Conflict) as err:
        check_promotion_allowed(REQUIRED, "m", "v2", "v1", [undecided], NOW)
    message = str(err.value)
    assert f"its latest gate {undecided.gate_id} was INCONCLUSIVE" in message
    assert "on_inconclusive is block" in message
    assert "about 4,200 more labelled images" in message
    # Named as the cause (auto-promotion, --gate), it is refused the same way.
    with pytest.raises(Conflict, match="INCONCLUSIVE"):
        check_promotion_allowed(
            REQUIRED, "m", "v2", "v1", [undecided], NOW, gate_id=undecided.gate_id
        )
    # A policy may let it clear a promotion like a PASS.
    lenient = msgspec.structs.replace(REQUIRED, on_inconclusive="allow")
    cleared = check_promotion_allowed(lenient, "m", "v2", "v1", [undecided], NOW)
    assert cleared.gate_id == undecided.gate_id and not cleared.forced


def test_old_policies_and_gate_requests_are_read_through_the_upcaster() -> None:
    old = (
        b'{"model_name":"m","policy":{"thresholds":{"max_accuracy_drop":0.02,'
        b'"max_p95_latency_increase":0.2,"require_not_significant":true,"alpha":0.05},'
        b'"require_gate":true,"max_gate_age_s":3600},"reason":"old"}'
    )
    e = decode_event("GatePolicySet", old, 1)
    t = e.policy.thresholds
    # The same 95% interval, read one-sided; the p95 rise becomes the paired-ratio margin.
    assert (t.max_accuracy_drop, t.max_latency_increase, t.alpha) == (0.02, 0.2, 0.025)
    assert t.min_images == 200 and e.policy.on_inconclusive == "block"
    assert e.policy.require_gate and e.policy.max_gate_age_s == 3600
    assert GatePolicySet.schema_version == 2
    requested = decode_event(
        "GateRequested",
        b'{"gate_id":"g","model_name":"m","candidate_version":"v2","baseline_version":"v1",'
        b'"dataset_id":"d","thresholds":{"max_accuracy_drop":0.01,'
        b'"max_p95_latency_increase":0.1,"require_not_significant":false,"alpha":0.1}}',
        1,
    )
    assert requested.thresholds == GateThresholds(alpha=0.05)
    # Schema-2 payloads decode as they are.
    current = GatePolicySet(model_name="m", policy=GatePolicy())
    assert decode_event("GatePolicySet", encode_event(current), 2) == current


def test_old_verdicts_keep_their_meaning() -> None:
    # A schema-1 verdict: p95 latency check, no rule field; it reads as the point-estimate rule.
    old = (
        b'{"gate_id":"g","model_name":"m","candidate_version":"v2","baseline_version":"v1",'
        b'"dataset_id":"d","verdict":"PASS","checks":[{"name":"p95_latency","baseline":10.0,'
        b'"candidate":10.5,"delta":0.05,"threshold":0.1,"verdict":"PASS"}],'
        b'"accuracy":{"images":100,"baseline_correct":90,"candidate_correct":90,'
        b'"only_baseline_correct":0,"only_candidate_correct":0},"latency":{"batch_size":64,'
        b'"batches":40,"baseline_p95_ms":10.0,"candidate_p95_ms":10.5,"ratio":1.05,'
        b'"ci_low":0.9,"ci_high":1.2,"order":"ABBA"}}'
    )
    e = decode_event("GateEvaluated", old, 1)
    assert e.verdict == "PASS" and e.rule == "point-estimate" and e.needed is None
    assert e.latency.statistic == "p95_ratio" and e.checks[0].name == "p95_latency"
