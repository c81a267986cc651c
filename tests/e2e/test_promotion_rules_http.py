"""Issue 21 over HTTP: four eyes on prod with two keys, and who may force past the gate policy."""

from __future__ import annotations

import pytest

from api.app import create_app
from tests.e2e.conftest import app_client

pytestmark = pytest.mark.anyio
KEYS = {
    "alice-secret-key-0123456789": ("alice", "admin"),
    "bob-secret-key-0123456789ab": ("bob", "operator"),
    "carol-secret-key-0123456789": ("carol", "operator"),
}
AS = {name: {"X-API-Key": key} for key, (name, _) in KEYS.items()}


@pytest.fixture
async def api(platform, test_settings):
    """The API with an admin (alice) and two operators (bob, carol)."""
    settings = test_settings.changed(security={"api_keys": KEYS})
    async with app_client(create_app(platform, settings=settings)) as c:
        yield c


async def _model(api, name: str, state_dict_file, **policy) -> None:
    """Register v1 (prod) and v2 as alice, then set the gate policy."""
    for i, version in enumerate(("v1", "v2")):
        body = {"model_version": version, "artifact_path": str(state_dict_file(f"{version}.pt", i))}
        r = await api.post(f"/models/{name}/versions", json=body, headers=AS["alice"])
        assert r.status_code == 201, r.text
    r = await api.post(f"/models/{name}/versions/v1/promote", headers=AS["alice"])
    assert r.status_code == 200, r.text
    r = await api.put(f"/models/{name}/gate-policy", json=policy, headers=AS["alice"])
    assert r.status_code == 200, r.text


async def _prod(api, name: str) -> str:
    r = await api.get(f"/models/{name}/versions", headers=AS["bob"])
    return next(v["model_version"] for v in r.json() if v["status"] == "prod")


async def test_four_eyes_a_request_then_a_second_keys_approval(
    api, model_name, state_dict_file
) -> None:
    await _model(api, model_name, state_dict_file, approvals_required=2, max_request_age_s=3600)
    approve = f"/models/{model_name}/versions/v2/approve"
    r = await api.post(approve, json={"reason": "nothing to approve"}, headers=AS["carol"])
    assert r.status_code == 409 and "no pending promotion request" in r.json()["detail"]
    r = await api.post(
        f"/models/{model_name}/versions/v2/promote",
        json={"reason": "better on the test set"},
        headers=AS["bob"],
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "requested"
    assert await _prod(api, model_name) == "v1"
    r = await api.post(approve, json={"reason": "my own"}, headers=AS["bob"])
    assert r.status_code == 403 and "another key must approve" in r.json()["detail"]
    r = await api.post(approve, json={"reason": "checked the gate"}, headers=AS["carol"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["requested_by"], body["approved_by"]) == ("prod", "bob", ["carol"])
    assert await _prod(api, model_name) == "v2"
    r = await api.get(f"/models/{model_name}/history", headers=AS["bob"])
    steps = [(e["event_type"], e["actor"]) for e in r.json()]
    assert steps[-3:] == [
        ("PromotionRequested", "bob"),
        ("PromotionApproved", "carol"),
        ("ModelVersionPromoted", "carol"),
    ]
    promoted = r.json()[-1]["details"]
    assert (promoted["requested_by"], promoted["approved_by"]) == ("bob", ["carol"])


async def test_an_operator_cannot_force_what_the_policy_reserves_for_admins(
    api, model_name, state_dict_file
) -> None:
    await _model(api, model_name, state_dict_file, require_gate=True)
    promote = f"/models/{model_name}/versions/v2/promote"
    forced = {"force": True, "reason": "hotfix"}
    r = await api.post(promote, json=forced, headers=AS["bob"])
    assert r.status_code == 403, r.text
    assert "needs role admin" in r.json()["detail"] and "role operator" in r.json()["detail"]
    assert await _prod(api, model_name) == "v1"
    r = await api.post(promote, headers=AS["bob"])  # unforced: the required gate is missing
    assert r.status_code == 409 and "no gate of v2" in r.json()["detail"]
    r = await api.post(promote, json=forced, headers=AS["alice"])
    assert r.status_code == 200 and await _prod(api, model_name) == "v2"


async def test_bad_policy_fields_are_400(api, model_name, state_dict_file) -> None:
    await _model(api, model_name, state_dict_file)
    for field, value in (
        ("approvals_required", 0),
        ("force_role", "reader"),
        ("min_gate_images", -1),
        ("max_request_age_s", 10),
    ):
        r = await api.put(
            f"/models/{model_name}/gate-policy", json={field: value}, headers=AS["alice"]
        )
        assert r.status_code == 400 and field in r.json()["detail"], (field, r.text)


async def test_a_gate_on_another_dataset_warns_naming_both(
    api, model_name, state_dict_file
) -> None:
    await _model(api, model_name, state_dict_file, gate_dataset="fashion_mnist_1000")
    body = {
        "model_name": model_name,
        "candidate_version": "v2",
        "baseline_version": "v1",
        "dataset_id": "fashion_mnist_100",
    }
    r = await api.post("/gates", json=body, headers=AS["bob"])
    assert r.status_code == 202, r.text
    warning = r.json()["warning"]
    assert "fashion_mnist_100 is not fashion_mnist_1000" in warning
    r = await api.post(
        "/gates", json={**body, "dataset_id": "fashion_mnist_1000"}, headers=AS["bob"]
    )
    assert r.status_code == 202 and r.json()["warning"] is None
