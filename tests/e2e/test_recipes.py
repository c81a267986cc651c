"""The justfile's recipes hand a multi-word value to the CLI whole, through the real `just`.

Each recipe that takes flags runs with a value of several words; argparse would answer a split
one with "unrecognized arguments" (exit 2). Where real state is cheap the value is read back
from the log; elsewhere the CLI's own error about the value shows it arrived in one piece.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.anyio
JUST = Path(sys.executable).parent / "just"  # rust-just, a dev dependency
JUSTFILE = ROOT / "justfile"
SINCE = "2000-01-01 00:00"  # a time with a space, as an operator types it


async def just(settings, *args: str) -> subprocess.CompletedProcess:
    """Run a recipe as an operator does, against the test servers."""
    command = [str(JUST), "--justfile", str(JUSTFILE), "--working-directory", str(ROOT), *args]
    return await _run(settings, command)


async def cli(settings, *args: str) -> subprocess.CompletedProcess:
    """Run the CLI itself, as the recipes do, against the test servers."""
    return await _run(settings, [sys.executable, "-m", "cli", *args])


async def _run(settings, command: list[str]) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database.url,
        "REDIS_URL": settings.redis.url,
        "ARTIFACTS_DIR": str(settings.files.artifacts_dir),
        "LOG_LEVEL": "warning",
        "COLUMNS": "400",  # rich tables on one line each, so a reason is never wrapped
    }
    for name in ("API_KEYS", "ALLOW_ANONYMOUS"):
        env.pop(name, None)
    # In a thread: the app under test shares this event loop.
    return await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
        )
    )


def whole(out: subprocess.CompletedProcess) -> None:
    """The CLI parsed the arguments: no value was split into extra ones."""
    assert "unrecognized arguments" not in out.stderr, out.stderr
    assert "does not contain recipe" not in out.stderr, out.stderr


async def ok(settings, *args: str) -> str:
    """Run a recipe that must succeed; its stdout."""
    out = await just(settings, *args)
    whole(out)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout


async def refused(settings, code: int, *args: str) -> str:
    """Run a recipe the CLI itself refuses with ``code``; its stderr on one line."""
    out = await just(settings, *args)
    whole(out)
    assert out.returncode == code, (args, out.stdout, out.stderr)
    return " ".join(out.stderr.split())


async def test_registry_recipes_keep_a_reason_of_several_words(
    client, test_settings, model_name, state_dict_file
) -> None:
    for seed, version in enumerate(("v1", "v2")):
        r = await client.post(
            f"/models/{model_name}/versions",
            json={
                "model_version": version,
                "artifact_path": str(state_dict_file(f"{version}.pt", seed)),
            },
        )
        assert r.status_code == 201, r.text
    reasons = {
        ("promote", model_name, "v1"): "first one in",
        ("tag", model_name, "v1", "owner=ml team"): "who owns it now",
        ("promote", model_name, "v2"): "a better one",
        ("rollback", model_name): "v2 is worse after all",
        ("gate-policy", model_name, "--max-accuracy-drop", "0.05"): "stricter from now on",
        ("demote", model_name, "v1"): "not good enough",
        ("archive", model_name, "v2"): "never again please",
    }
    for args, reason in reasons.items():
        await ok(test_settings, *args, "--reason", reason)

    history = await ok(test_settings, "history", model_name, "--wide")
    assert "tagged v1: owner=ml team" in history, history
    for reason in reasons.values():
        assert f" {reason} " in history, (reason, history)
    trail = await ok(test_settings, "replay", "--model", model_name, "--since", SINCE, "--json")
    recorded = [json.loads(line)["reason"] for line in trail.splitlines()]
    assert [r for r in recorded if r] == list(reasons.values())

    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    at = await ok(test_settings, "history", model_name, "--at", now)
    assert "prod: none" in at and "v2" in at and "archived" in at, at

    gate = await refused(
        test_settings, 2, "gate", model_name, "v1", "v2", "--dataset", "no such set"
    )
    assert "no such set" in gate, gate


async def test_key_recipes_keep_a_reason_of_several_words(test_settings) -> None:
    name = f"recipe-{uuid.uuid4().hex[:8]}"
    try:
        key = await ok(test_settings, "create-key", name, "reader", "--reason", "for the night")
        assert key.strip().startswith("iep_")
        await ok(test_settings, "revoke-key", name, "--reason", "the night is over")
    finally:
        await just(test_settings, "revoke-key", name)
    trail = await ok(test_settings, "replay", "--since", SINCE, "--json")
    recorded = [json.loads(line) for line in trail.splitlines() if name in line]
    assert [e["reason"] for e in recorded][:2] == ["for the night", "the night is over"]


async def test_dead_letter_and_audit_recipes_take_values_of_several_words(test_settings) -> None:
    await ok(test_settings, "dlq")  # no STREAM: every stream, not one named ""
    await ok(test_settings, "dlq", "jobs.shards", "--limit", "5")
    for verb in ("dlq-retry", "dlq-drop"):
        error = await refused(
            test_settings, 1, verb, "jobs.shards.dlq/1-0", "--reason", "not worth it"
        )
        assert "no dead letter 'jobs.shards.dlq/1-0'" in error, error
    error = await refused(test_settings, 1, "audit", "--anchor", "not an anchor")
    assert "anchor 'not an anchor' lacks" in error, error
    replay = await just(test_settings, "replay", "--actor", "nobody at all", "--since", SINCE)
    whole(replay)
    assert replay.returncode == 0 and replay.stderr == "0 events\n", replay.stderr


async def test_a_refusal_through_a_recipe_is_the_platforms_line_alone(test_settings) -> None:
    """No echoed command line and no "error: Recipe `promote` failed on line N": the recipe's
    stderr and exit status are the CLI's own, for a refusal (1) and a usage error (2)."""
    for code, args in (
        (1, ("promote", "no-such-model", "v1", "--reason", "two words")),
        (2, ("promote", "no-such-model", "v1", "--froce")),
    ):
        recipe, direct = await just(test_settings, *args), await cli(test_settings, *args)
        assert (recipe.returncode, direct.returncode) == (code, code), (recipe, direct)
        assert recipe.stderr == direct.stderr and recipe.stdout == direct.stdout == "", recipe
        assert "error: Recipe" not in recipe.stderr and ".venv/bin/python" not in recipe.stderr
    assert recipe.stderr.startswith("usage: python -m cli promote "), recipe.stderr
    assert "(did you mean --force?)" in recipe.stderr
