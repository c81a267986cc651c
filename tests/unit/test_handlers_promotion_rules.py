"""Promotion rules of issue 21 on fakes: which gates count (dataset, size, a standing FAIL), who
may force, and four eyes (a request, a second key's approval, expiry)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import msgspec
import pytest

from domain.errors import Conflict, Forbidden
from domain.gates.aggregate import FAILED, PASSED
from domain.gates.handlers import set_gate_policy
from domain.registry.approvals import reference_dataset_of
from domain.registry.commands import ApprovePromotion, PromoteModelVersion, SetGatePolicy
from domain.registry.gate_evidence import dataset_family
from domain.registry.gate_policy import GateOutcome, check_promotion_allowed
from domain.registry.handlers import promote_model_version
from events.base import EventMetadata
from events.codec import decode_event
from events.gates import GatePolicy, GateThresholds
from events.registry import (
    ArtifactMetadata,
    ModelVersionPromoted,
    PromotionApproved,
    PromotionRequested,
)
from tests.unit.test_handlers_gates import through_verdict
from tests.unit.wiring import GateFakes

pytestmark = pytest.mark.anyio
ADMIN = EventMetadata(actor="root")
# v2 misses every tenth image from 10 on: a FAIL on mnist_250, a PASS on its first 5 images.
WRONG = {"v2": set(range(10, 250, 10))}
# A margin of 50 points and no minimum: what it takes for 5 images to PASS.
LOOSE = GateThresholds(max_accuracy_drop=0.5, min_images=0)


@pytest.fixture
def gp() -> GateFakes:
    """Fresh fakes per test: model m, prod v1, candidate v2 worse on mnist_250 only."""
    fakes = GateFakes(wrong=WRONG)
    fakes.datasets.datasets["mnist_5"] = fakes.datasets.datasets.pop("tiny_5")
    return fakes


async def policy(gp: GateFakes, **fields) -> None:
    """Set model m's gate policy (as an admin)."""
    cmd = SetGatePolicy(model_name="m", policy=GatePolicy(**fields), metadata=ADMIN)
    await set_gate_policy(cmd, gp.gate_ports)


async def gate_on(gp: GateFakes, dataset: str, expect: str) -> str:
    """Run a gate of v2 against v1 on ``dataset`` to its verdict; its id."""
    gate = await gp.request(dataset_id=dataset)
    assert (await through_verdict(gp, gate.gate_id)).status == expect
    return gate.gate_id


def promote(actor: str = "alice", **kw) -> PromoteModelVersion:
    return PromoteModelVersion(
        model_name="m", model_version="v2", metadata=EventMetadata(actor=actor), **kw
    )


def approve(actor: str, reason: str = "looked at the gate") -> ApprovePromotion:
    return ApprovePromotion(
        model_name="m", model_version="v2", reason=reason, metadata=EventMetadata(actor=actor)
    )


async def test_a_small_pass_does_not_erase_a_large_fail(gp: GateFakes) -> None:
    """The exploit: FAIL on 250 images, then PASS on 5; an unforced promotion is refused."""
    await policy(gp, require_gate=True)
    failed = await gate_on(gp, "mnist_250", FAILED)
    gp.clock.advance(60)
    # 5 images cannot pass within 1 point any more; a margin loose enough lets them.
    await policy(gp, require_gate=True, thresholds=LOOSE)
    passed = await gate_on(gp, "mnist_5", PASSED)
    with pytest.raises(Conflict) as err:
        await promote_model_version(promote(), gp.registry_ports)
    message = str(err.value)
    assert f"PASS {passed}" in message and f"FAIL {failed}" in message
    assert "mnist_250 (250 images)" in message and "5 images" in message
    async with gp.uow() as tx:
        assert (await tx.models.load("m")).prod == "v1"
    # Forcing still works, by a role the policy allows, with a reason.
    result = await promote_model_version(
        promote(force=True, reason="known regression accepted", role="admin"),
        gp.registry_ports,
    )
    assert result.recorded[0].event.forced is True


def outcome(gp: GateFakes, verdict: str, images: int = 250, age_s: float = 0) -> GateOutcome:
    """A finished gate of v2 against v1 on mnist_250, decided ``age_s`` ago."""
    return GateOutcome(
        gate_id=str(uuid.uuid4()),
        model_name="m",
        candidate_version="v2",
        baseline_version="v1",
        verdict=verdict,
        decided_at=gp.clock.now() - timedelta(seconds=age_s),
        dataset_id="mnist_250",
        images=images,
    )


async def test_a_later_fail_on_the_same_dataset_stands_over_an_earlier_pass(gp: GateFakes) -> None:
    await policy(gp, require_gate=True)
    passed, failed = outcome(gp, "PASS", age_s=60), outcome(gp, "FAIL", age_s=10)
    with pytest.raises(Conflict, match=f"latest gate {failed.gate_id} ended FAIL on mnist_250"):
        await promote_model_version(promote(gates=(passed, failed)), gp.registry_ports)
    # A FAIL on fewer images than a PASS does not overrule it.
    small = outcome(gp, "FAIL", images=100, age_s=10)
    result = await promote_model_version(promote(gates=(passed, small)), gp.registry_ports)
    assert result.recorded[0].event.gate_id == passed.gate_id


async def test_a_pass_on_another_dataset_or_too_few_images_does_not_count(gp: GateFakes) -> None:
    await policy(gp, require_gate=True, gate_dataset="mnist_250", thresholds=LOOSE)
    passed = await gate_on(gp, "mnist_5", PASSED)
    with pytest.raises(Conflict, match=f"gate {passed} ran on mnist_5, not on mnist_250"):
        await promote_model_version(promote(), gp.registry_ports)
    await policy(gp, require_gate=True, min_gate_images=100)
    with pytest.raises(Conflict, match="compared 5 images, fewer than the policy's min_gate_"):
        await promote_model_version(promote(), gp.registry_ports)
    await policy(gp, require_gate=True, min_gate_images=5)
    result = await promote_model_version(promote(), gp.registry_ports)
    assert result.recorded[0].event.gate_id == passed


async def test_only_the_policys_force_role_may_force(gp: GateFakes) -> None:
    await policy(gp, require_gate=True)
    with pytest.raises(Forbidden, match=r"needs role admin .*this key has role operator"):
        await promote_model_version(
            promote(force=True, reason="hotfix", role="operator"), gp.registry_ports
        )
    await policy(gp, require_gate=True, force_role="operator")
    result = await promote_model_version(
        promote(force=True, reason="hotfix", role="operator"), gp.registry_ports
    )
    assert result.state.prod == "v2"


async def test_four_eyes_a_request_then_another_keys_approval_promotes(gp: GateFakes) -> None:
    await policy(gp, approvals_required=2)
    result = await promote_model_version(promote(reason="better model"), gp.registry_ports)
    (requested,) = [r.event for r in result.recorded]
    assert isinstance(requested, PromotionRequested) and result.state.prod == "v1"
    assert requested.approvals_required == 2
    # The same request again records nothing; the requester cannot approve it.
    assert (await promote_model_version(promote(), gp.registry_ports)).recorded == []
    with pytest.raises(Forbidden, match=r"alice requested the promotion .*another key"):
        await promote_model_version(approve("alice"), gp.registry_ports)
    result = await promote_model_version(approve("bob"), gp.registry_ports)
    approved, promoted = (r.event for r in result.recorded)
    assert isinstance(approved, PromotionApproved) and approved.requested_by == "alice"
    assert isinstance(promoted, ModelVersionPromoted)
    assert (promoted.requested_by, promoted.approved_by) == ("alice", ["bob"])
    assert promoted.reason == "better model" and result.state.prod == "v2"
    assert [r.metadata.actor for r in result.recorded] == ["bob", "bob"]
    with pytest.raises(Conflict, match="already prod"):
        await promote_model_version(approve("carol"), gp.registry_ports)


async def test_three_approvals_need_two_distinct_approvers(gp: GateFakes) -> None:
    await policy(gp, approvals_required=3)
    await promote_model_version(promote(), gp.registry_ports)
    first = await promote_model_version(approve("bob"), gp.registry_ports)
    assert [type(r.event) for r in first.recorded] == [PromotionApproved]
    with pytest.raises(Conflict, match="bob already approved"):
        await promote_model_version(approve("bob"), gp.registry_ports)
    second = await promote_model_version(approve("carol"), gp.registry_ports)
    assert second.recorded[-1].event.approved_by == ["bob", "carol"]


async def test_a_request_expires(gp: GateFakes) -> None:
    await policy(gp, approvals_required=2, max_request_age_s=600)
    await promote_model_version(promote(), gp.registry_ports)
    gp.clock.advance(601)
    with pytest.raises(Conflict, match=r"expired at .*request the promotion again"):
        await promote_model_version(approve("bob"), gp.registry_ports)
    # A new request replaces the expired one, and another key's approval then promotes.
    await promote_model_version(promote(), gp.registry_ports)
    result = await promote_model_version(approve("bob"), gp.registry_ports)
    assert result.state.prod == "v2"


async def test_an_approval_without_a_request_or_a_clearance_is_refused(gp: GateFakes) -> None:
    with pytest.raises(Conflict, match="no pending promotion request; `just promote m v2"):
        await promote_model_version(approve("bob"), gp.registry_ports)
    await policy(gp, approvals_required=2, require_gate=True)
    with pytest.raises(Conflict, match="no gate of v2"):
        await promote_model_version(promote(), gp.registry_ports)  # refused before any request
    passed = outcome(gp, "PASS", age_s=60)
    result = await promote_model_version(promote(gates=(passed,)), gp.registry_ports)
    assert result.recorded[0].event.gate_id == passed.gate_id
    # A FAIL after the request: the approval checks the gates again and refuses.
    failed = outcome(gp, "FAIL", age_s=1)
    cmd = msgspec.structs.replace(approve("bob"), gates=(passed, failed))
    with pytest.raises(Conflict, match="ended FAIL"):
        await promote_model_version(cmd, gp.registry_ports)
    result = await promote_model_version(
        msgspec.structs.replace(approve("bob"), gates=(passed,)), gp.registry_ports
    )
    assert result.state.prod == "v2"


async def test_a_gate_on_data_that_cannot_clear_a_promotion_warns_naming_both(
    gp: GateFakes,
) -> None:
    await policy(gp, gate_dataset="mnist_250")
    gate = await gp.request(dataset_id="mnist_5")
    assert gate.warning is not None
    assert "mnist_5 is not mnist_250 (the policy's gate_dataset)" in gate.warning
    assert gp.gate_events(gate.gate_id)[0].warning == gate.warning  # in the log too
    assert (await gp.request(dataset_id="mnist_250")).warning is None
    await policy(gp, min_gate_images=100)
    small = await gp.request(dataset_id="mnist_5")
    assert "mnist_5 has 5 images, fewer than the policy's min_gate_images 100" in small.warning


def test_old_payloads_replay_with_the_new_fields_defaulted() -> None:
    policy_set = b'{"type":"GatePolicySet","model_name":"m","policy":{"require_gate":true}}'
    e = decode_event("GatePolicySet", policy_set)
    assert e.policy.require_gate and e.policy.approvals_required == 1
    assert (e.policy.gate_dataset, e.policy.min_gate_images, e.policy.force_role) == (
        None,
        0,
        "admin",
    )
    promoted = b'{"type":"ModelVersionPromoted","model_name":"m","model_version":"v1"}'
    p = decode_event("ModelVersionPromoted", promoted)
    assert (p.requested_by, p.approved_by) == (None, [])
    requested = (
        b'{"type":"GateRequested","gate_id":"g","model_name":"m","candidate_version":"v2",'
        b'"baseline_version":"v1","dataset_id":"mnist_250"}'
    )
    assert decode_event("GateRequested", requested).warning is None


async def test_an_auto_promotions_gate_does_not_count_against_a_larger_fail(gp: GateFakes) -> None:
    small = msgspec.structs.replace(outcome(gp, "PASS", age_s=1), images=5)
    failed = outcome(gp, "FAIL", age_s=60)
    cmd = promote(gate_id=small.gate_id, gates=(small, failed))
    with pytest.raises(Conflict, match=f"does not erase the FAIL {failed.gate_id}"):
        await promote_model_version(cmd, gp.registry_ports)


def test_dataset_families_ignore_splits_sizes_and_slices() -> None:
    for dataset_id in ("fashion_mnist_10000", "fashion_mnist_test", "fashion_mnist_train[:2000]"):
        assert dataset_family(dataset_id) == "fashion_mnist"
    assert dataset_family("mnist_250") == "mnist" and dataset_family("odd name") == "odd name"


async def test_the_reference_dataset_comes_from_the_registration_or_the_models_others(
    gp: GateFakes,
) -> None:
    async with gp.uow() as tx:
        state = await tx.models.load("m")
    assert reference_dataset_of(state, "v2") is None  # nothing names one: no dataset rule
    state.versions["v1"].metadata = ArtifactMetadata(dataset="fashion_mnist_train[:2000]")
    assert dataset_family(reference_dataset_of(state, "v2")) == "fashion_mnist"
    state.versions["v2"].metadata = ArtifactMetadata(dataset="mnist_train")
    assert reference_dataset_of(state, "v2") == "mnist"  # its own registration first
    on_mnist = outcome(gp, "PASS")
    clearance = check_promotion_allowed(
        GatePolicy(require_gate=True),
        "m",
        "v2",
        "v1",
        (on_mnist,),
        gp.clock.now(),
        reference="mnist",
    )
    assert clearance.gate_id == on_mnist.gate_id
    with pytest.raises(Conflict, match="ran on mnist_250, not on fashion_mnist"):
        check_promotion_allowed(
            GatePolicy(require_gate=True),
            "m",
            "v2",
            "v1",
            (on_mnist,),
            gp.clock.now(),
            reference="fashion_mnist",
        )
