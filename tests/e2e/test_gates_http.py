"""Gates over HTTP: requests and their validation, pages, the policy, required and forced gates.

No worker runs here: these are the synchronous parts (the verdicts are in
tests/integration/test_gates_pipeline.py).
"""

from __future__ import annotations

import uuid

import pytest

from api.app import create_app
from tests.e2e.conftest import app_client

pytestmark = pytest.mark.anyio
ALICE = {"X-API-Key": "alice-secret-key-0123456789"}


@pytest.fixture
async def keyed(platform, test_settings):
    """The API with one admin key (alice), so events record who acted."""
    settings = test_settings.changed(
        security={"api_keys": {ALICE["X-API-Key"]: ("alice", "admin")}}
    )
    async with app_client(create_app(platform, settings=settings)) as c:
        c.headers.update(ALICE)
        yield c


async def _model(client, name: str, state_dict_file, *versions: str) -> None:
    for i, version in enumerate(versions):
        body = {"model_version": version, "artifact_path": str(state_dict_file(f"{version}.pt", i))}
        r = await client.post(f"/models/{name}/versions", json=body)
        assert r.status_code == 201, r.text
    r = await client.post(f"/models/{name}/versions/{versions[0]}/promote")
    assert r.status_code == 200, r.text


def _gate(name: str, **kw) -> dict:
    return {
        "model_name": name,
        "candidate_version": "v2",
        "baseline_version": "v1",
        "dataset_id": "fashion_mnist_100",
        **kw,
    }


async def test_bad_gate_requests_get_precise_4xx(keyed, model_name, state_dict_file) -> None:
    await _model(keyed, model_name, state_dict_file, "v1", "v2")
    cases = [
        (_gate("ghost"), 404, "unknown model 'ghost'"),
        (_gate(model_name, candidate_version="v9"), 404, "no version 'v9' (known: v1, v2)"),
        (_gate(model_name, dataset_id="cifar_10"), 400, "cifar"),
        (_gate(model_name, dataset_id=None), 400, "neither v2 nor v1"),
        (_gate(model_name, dataset_id="../../etc/passwd"), 400, ""),
        (_gate("../etc"), 400, "invalid model name"),
        (_gate(model_name, baseline_version="v1/../../x"), 400, "invalid model version"),
        (_gate(model_name, colour="red"), 400, "colour"),
        ({"model_name": model_name}, 400, "candidate_version"),
        (_gate(model_name, candidate_version=7), 400, "candidate_version"),
        (_gate(model_name, reason="x" * 5000), 400, "reason"),
    ]
    for body, status, text in cases:
        r = await keyed.post("/gates", json=body)
        assert r.status_code == status and text in r.text, (body, r.text)
    for path, status in (
        ("/gates/not-a-uuid", 404),
        (f"/gates/{uuid.uuid4()}", 404),
        ("/gates/..%2F..%2Fetc", 404),
        ("/models/ghost/gates", 404),
        (f"/models/{model_name}/gates?cursor=%21%21", 400),
        (f"/models/{model_name}/gates?cursor=bm9wZQ", 400),
        (f"/models/{model_name}/gates?limit=0", 400),
        ("/models/..%2Fx/gates", 404),
        ("/models/Bad!Name/gates", 400),
    ):
        r = await keyed.get(path)
        assert r.status_code == status, (path, r.text)
    assert (await keyed.get(f"/models/{model_name}/gates")).json() == []


async def test_gates_are_accepted_read_and_paged(keyed, model_name, state_dict_file) -> None:
    await _model(keyed, model_name, state_dict_file, "v1", "v2")
    ids = []
    for candidate in ("v2", "v1", "v2"):
        r = await keyed.post("/gates", json=_gate(model_name, candidate_version=candidate))
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "requested" and r.json()["dataset_id"] == "fashion_mnist_100"
        ids.append(r.json()["gate_id"])
    gate = (await keyed.get(f"/gates/{ids[0]}")).json()
    assert (gate["status"], gate["verdict"], gate["requested_by"]) == ("requested", None, "alice")
    assert gate["thresholds"]["max_accuracy_drop"] == 0.01 and gate["checks"] == []
    seen, cursor = [], None
    while True:
        query = f"?limit=1&cursor={cursor}" if cursor else "?limit=1"
        r = await keyed.get(f"/models/{model_name}/gates{query}")
        assert r.status_code == 200 and len(r.json()) <= 1
        seen += [g["gate_id"] for g in r.json()]
        cursor = r.headers.get("x-next-cursor")
        if not cursor:
            break
    assert seen == ids[::-1]  # newest first, each once
    history = (await keyed.get(f"/models/{model_name}/history")).json()
    requested = [h for h in history if h["event_type"] == "GateRequested"]
    assert (
        len(requested) == 3 and f"gate {ids[0][:8]} requested: v2 vs v1" in requested[0]["summary"]
    )


async def test_policy_required_gate_and_forced_promotion(
    keyed, model_name, state_dict_file
) -> None:
    await _model(keyed, model_name, state_dict_file, "v1", "v2")
    url = f"/models/{model_name}/gate-policy"
    assert (await keyed.get(url)).json()["policy"]["require_gate"] is False
    for body, text in (
        ({"require_gate": "yes"}, "require_gate"),
        ({"colour": 1}, "colour"),
        ({"thresholds": {"max_accuracy_drop": 2}}, "max_accuracy_drop"),
        ({"max_gate_age_s": 0}, "max_gate_age_s"),
        # Gone with non-inferiority (issue 24): named, not silently ignored.
        ({"thresholds": {"require_not_significant": True}}, "require_not_significant"),
        ({"on_inconclusive": "maybe"}, "on_inconclusive"),
        ({"thresholds": {"alpha": 0.4}}, "one-sided"),
    ):
        r = await keyed.put(url, json=body)
        assert r.status_code == 400 and text in r.text, r.text
    policy = {"require_gate": True, "max_gate_age_s": 600, "reason": "release train"}
    r = await keyed.put(url, json=policy)
    assert r.status_code == 200 and r.json()["changed"] and r.json()["policy"]["require_gate"]
    assert not (await keyed.put(url, json=policy)).json()["changed"]
    thresholds = r.json()["policy"]["thresholds"]
    assert thresholds == {
        "max_accuracy_drop": 0.01,
        "max_latency_increase": 0.1,
        "alpha": 0.025,
        "min_images": 200,
    }
    assert r.json()["policy"]["on_inconclusive"] == "block"

    promote = f"/models/{model_name}/versions/v2/promote"
    r = await keyed.post(promote, json={"reason": "looks good"})
    assert r.status_code == 409, r.text
    assert f"run `just gate {model_name} v2 v1`" in r.json()["detail"]
    assert "--force --reason" in r.json()["detail"]
    r = await keyed.post(promote, json={"force": True})
    assert r.status_code == 400 and "needs a reason" in r.json()["detail"]
    r = await keyed.post(promote, json={"force": True, "reason": "hotfix for incident 42"})
    assert r.status_code == 200 and r.json()["previous_prod"] == "v1", r.text

    history = (await keyed.get(f"/models/{model_name}/history")).json()
    [policy_set] = [h for h in history if h["event_type"] == "GatePolicySet"]
    assert "require_gate on" in policy_set["summary"] and policy_set["actor"] == "alice"
    forced = history[-1]
    assert forced["event_type"] == "ModelVersionPromoted" and forced["actor"] == "alice"
    assert forced["details"]["forced"] is True
    assert forced["details"]["force_reason"] == "hotfix for incident 42"
    assert "FORCED past the gate policy (hotfix for incident 42)" in forced["summary"]


async def test_policy_changes_need_an_admin(platform, test_settings, model_name, state_dict_file):
    keys = {"op-key-0123456789abcdef": ("olga", "operator")}
    settings = test_settings.changed(security={"api_keys": keys})
    async with app_client(create_app(platform, settings=settings)) as c:
        c.headers["X-API-Key"] = "op-key-0123456789abcdef"
        await _model(c, model_name, state_dict_file, "v1", "v2")
        r = await c.put(f"/models/{model_name}/gate-policy", json={"require_gate": False})
        assert r.status_code == 403 and "admin" in r.json()["detail"]
        assert (await c.post("/gates", json=_gate(model_name))).status_code == 202
