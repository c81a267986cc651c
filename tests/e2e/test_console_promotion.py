"""The console's promote page (issue 22): it says up front whether a gate is required and whether
one has passed, and a blocked promotion says what to do in the console, not on the command line.

Gates are recorded through the gate store (the worker's path to the log), without a worker.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from api.app import create_app
from events.base import EventMetadata
from events.gates import AccuracyFigures, GateCheck, GateEvaluated, GateRequested

pytestmark = pytest.mark.anyio
KEYS = {
    "operator": "operator-promote-key-0123456789",
    "admin": "admin-promote-key-0123456789",
}
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
DATASET = "fashion_mnist_100"


@pytest.fixture
async def console(platform, test_settings) -> AsyncIterator:
    """``console(role)``: a client logged in with that role's bootstrap key."""
    keys = {secret: (f"{role}-pro", role) for role, secret in KEYS.items()}
    settings = test_settings.changed(security={"api_keys": keys, "rate_limit_per_s": 0})
    app = create_app(platform, settings=settings)
    async with app.lifespan():

        @asynccontextmanager
        async def session(role: str):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                r = await c.post("/ui/login", data={"key": KEYS[role]})
                assert r.status_code == 303, r.text
                yield c

        yield session


async def _model(c: httpx.AsyncClient, name: str, state_dict_file, require_gate: bool) -> None:
    """v1 (prod) and v2 of ``name``, and its gate policy."""
    h = {"x-api-key": KEYS["admin"]}
    for i, v in enumerate(("v1", "v2")):
        body = {"model_version": v, "artifact_path": str(state_dict_file(f"{v}.pt", i))}
        assert (await c.post(f"/models/{name}/versions", json=body, headers=h)).status_code == 201
    r = await c.post(f"/models/{name}/versions/v1/promote", json={}, headers=h)
    assert r.status_code == 200, r.text
    policy = {"require_gate": require_gate, "reason": "release train"}
    r = await c.put(f"/models/{name}/gate-policy", json=policy, headers=h)
    assert r.status_code == 200, r.text


async def _gate(platform, name: str, verdict: str, images: int) -> str:
    """A finished gate of v2 against v1 on DATASET, recorded as the worker records one."""
    gate_id = str(uuid.uuid4())
    figures = AccuracyFigures(
        images=images,
        baseline_correct=images // 2,
        candidate_correct=images // 2,
        only_baseline_correct=0,
        only_candidate_correct=0,
    )
    check = GateCheck(
        name="accuracy", baseline=0.5, candidate=0.5, delta=0.0, threshold=0.01, verdict=verdict
    )
    compared = {"model_name": name, "candidate_version": "v2", "baseline_version": "v1"}
    events = [
        GateRequested(gate_id=gate_id, dataset_id=DATASET, **compared),
        GateEvaluated(
            gate_id=gate_id,
            dataset_id=DATASET,
            verdict=verdict,
            checks=[check],
            accuracy=figures,
            **compared,
        ),
    ]
    async with platform.uow() as tx:
        state = await tx.gates.load(gate_id)
        await tx.gates.save(state, events, EventMetadata(actor="gate-worker"))
    return gate_id


def _text(html: str, element_id: str) -> str:
    """The text inside the element with ``element_id`` (tags dropped, spaces collapsed)."""
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</(?:dd|p|section)>', html, re.S)
    assert match, f"no #{element_id} on the page"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


async def test_the_promote_page_says_a_gate_is_required_and_whether_one_passed(
    console, platform, model_name, state_dict_file
) -> None:
    url = f"/ui/models/{model_name}/versions/v2/promote"
    async with console("operator") as op:
        await _model(op, model_name, state_dict_file, require_gate=True)
        page = (await op.get(url)).text
        assert "A gate is required." in page and "require_gate" in page
        assert _text(page, "latest-gate") == "none"
        assert _text(page, "gate-outcome").startswith("would be refused: promoting")
        assert "there is no gate of v2" in _text(page, "gate-outcome")
        assert f"just gate {model_name} v2 v1" in _text(page, "gate-advice")

        failed = await _gate(platform, model_name, "FAIL", 100)
        page = (await op.get(url)).text
        latest = _text(page, "latest-gate")
        assert f"Gate {failed[:8]}" in latest and "FAIL" in latest and DATASET in latest
        assert "verdict-fail" in page and "ended FAIL" in _text(page, "gate-outcome")

        passed = await _gate(platform, model_name, "PASS", 200)  # more images than the FAIL
        page = (await op.get(url)).text
        assert f"Gate {passed[:8]}" in _text(page, "latest-gate") and "verdict-pass" in page
        assert _text(page, "gate-outcome") == f"is cleared by Gate {passed[:8]}"
        assert 'id="gate-advice"' not in page


async def test_a_page_without_a_required_gate_says_so(console, model_name, state_dict_file) -> None:
    async with console("operator") as op:
        await _model(op, model_name, state_dict_file, require_gate=False)
        page = (await op.get(f"/ui/models/{model_name}/versions/v2/promote")).text
        assert "No gate is required" in page and "A gate is required" not in page
        assert _text(page, "gate-outcome") == "is allowed"


async def test_a_blocked_promotion_says_what_to_do_in_the_console(
    console, model_name, state_dict_file
) -> None:
    url = f"/ui/models/{model_name}/versions/v2/promote"
    form = {"reason": "looks good", "confirm": "yes"}
    async with console("operator") as op, console("admin") as ad:
        await _model(op, model_name, state_dict_file, require_gate=True)
        # An operator may not force (the policy's force_role is admin): no box, and whom to ask.
        page = (await op.get(url)).text
        assert 'name="force"' not in page
        r = await op.post(url, data={**form, "csrf_token": CSRF.search(page).group(1)})
        assert r.status_code == 409
        error = _text(r.text, "form-error")
        assert "--force" not in error and "--reason" not in error
        assert "there is no gate of v2" in error
        assert "Only a key with role admin may force" in error and "admin-pro" in error
        # A forged force box is refused by the policy's rule, with the same advice.
        r = await op.post(
            url, data={**form, "force": "yes", "csrf_token": CSRF.search(page).group(1)}
        )
        assert r.status_code == 403 and "needs role admin" in _text(r.text, "form-error")
        # An admin may force: the box is there, and the refusal says to tick it.
        page = (await ad.get(url)).text
        assert 'name="force"' in page
        r = await ad.post(url, data={**form, "csrf_token": CSRF.search(page).group(1)})
        assert r.status_code == 409
        error = _text(r.text, "form-error")
        assert "--force" not in error and "tick “Force past the gate policy”" in error
        r = await ad.post(
            url, data={**form, "force": "yes", "csrf_token": CSRF.search(page).group(1)}
        )
        assert r.status_code == 303
        r = await ad.get(f"/models/{model_name}", headers={"x-api-key": KEYS["admin"]})
        assert r.json()["prod_version"] == "v2"
