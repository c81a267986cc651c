"""Four eyes from the CLI: `gate-policy --approvals-required 2`, `promote` opens a request,
`approve` by another actor (ACTOR) promotes, the requester's own approval is refused, and
`history` shows every step."""

from __future__ import annotations

import pytest

from tests.e2e.test_history_cli import cli

pytestmark = pytest.mark.anyio


async def test_promote_requests_and_another_actor_approves(
    client, test_settings, model_name, state_dict_file
) -> None:
    for seed, version in enumerate(("v1", "v2")):
        body = {"model_version": version, "artifact_path": str(state_dict_file(f"{seed}.pt", seed))}
        r = await client.post(f"/models/{model_name}/versions", json=body)
        assert r.status_code == 201, r.text
    assert (
        await cli(test_settings, "promote", model_name, "v1", "--reason", "first")
    ).returncode == 0
    policy = await cli(
        test_settings, "gate-policy", model_name, "--approvals-required", "2", "--reason", "4 eyes"
    )
    assert policy.returncode == 0, policy.stderr
    assert "approvals_required" in policy.stdout and "policy set" in policy.stdout

    asked = await cli(
        test_settings, "promote", model_name, "v2", "--reason", "better", ACTOR="alice"
    )
    assert asked.returncode == 0, asked.stderr
    assert f"requested promotion of {model_name} v2" in asked.stdout
    assert f"just approve {model_name} v2" in asked.stdout
    r = await client.get(f"/models/{model_name}/versions")
    assert {v["model_version"]: v["status"] for v in r.json()}["v2"] == "staging"

    own = await cli(test_settings, "approve", model_name, "v2", "--reason", "me", ACTOR="alice")
    assert own.returncode != 0 and "another key must approve it" in own.stderr
    missing = await cli(test_settings, "approve", model_name)
    assert missing.returncode == 2 and "usage: approve" in missing.stderr

    done = await cli(test_settings, "approve", model_name, "v2", "--reason", "ok", ACTOR="bob")
    assert done.returncode == 0, done.stderr
    assert f"approved and promoted {model_name} v2 to prod (demoted v1)" in done.stdout
    assert "approved by cli:bob" in done.stdout
    r = await client.get(f"/models/{model_name}/versions")
    assert {v["model_version"]: v["status"] for v in r.json()}["v2"] == "prod"

    trail = await cli(test_settings, "history", model_name, "--wide")
    assert trail.returncode == 0, trail.stderr
    for line in ("requested promotion of v2", "approved the promotion of v2", "approved by"):
        assert line in trail.stdout, trail.stdout
