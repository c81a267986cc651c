"""`history` as an operator reads it: 100 columns, newest first, CLI actors marked as such."""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import sys

import anyio
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.anyio
LONG_REASON = "the canary showed a steady regression on the night shift's scanned receipts"


async def cli(settings, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`python -m cli` against the test servers, piped as in a script."""
    full = {
        **os.environ,
        "DATABASE_URL": settings.database.url,
        "REDIS_URL": settings.redis.url,
        "ARTIFACTS_DIR": str(settings.files.artifacts_dir),
        "LOG_LEVEL": "warning",
        **env,
    }
    full.pop("ACTOR", None) if "ACTOR" not in env else None
    command = [sys.executable, "-m", "cli", *args]
    return await anyio.to_thread.run_sync(
        lambda: subprocess.run(command, cwd=ROOT, env=full, capture_output=True, text=True)
    )


def positions(out: str) -> list[int]:
    """The event positions of a printed trail, in printed order."""
    return [int(m) for m in re.findall(r"^\S*\s*(\d+)\s*│", out, re.M)]


async def test_history_fits_100_columns_newest_first_and_marks_cli_actors(
    client, test_settings, model_name, state_dict_file
) -> None:
    for seed, version in enumerate(("v1", "v2")):
        r = await client.post(
            f"/models/{model_name}/versions",
            json={
                "model_version": version,
                "artifact_path": str(state_dict_file(f"{seed}.pt", seed)),
            },
        )
        assert r.status_code == 201, r.text
    done = await cli(test_settings, "promote", model_name, "v1", "--reason", LONG_REASON)
    assert done.returncode == 0, done.stderr
    bot = await cli(test_settings, "promote", model_name, "v2", "--reason", "x", ACTOR="deploy-bot")
    assert bot.returncode == 0, bot.stderr

    plain = await cli(test_settings, "history", model_name)
    assert plain.returncode == 0, plain.stderr
    assert max(len(line) for line in plain.stdout.splitlines()) <= 100, plain.stdout
    newest_first = positions(plain.stdout)
    assert len(newest_first) == 4 and newest_first == sorted(newest_first, reverse=True)
    assert "not authenticated" in plain.stdout  # the caption under a trail with CLI actors
    assert f"cli:{getpass.getuser()}"[:17] in plain.stdout

    oldest_first = await cli(test_settings, "history", model_name, "--reverse")
    assert positions(oldest_first.stdout) == sorted(newest_first)

    wide = await cli(test_settings, "history", model_name, "--wide")
    assert wide.returncode == 0, wide.stderr
    assert LONG_REASON in wide.stdout  # whole, on one line
    assert f"cli:deploy-bot (os {getpass.getuser()})" in wide.stdout
    assert f"cli:{getpass.getuser()} " in wide.stdout


async def test_an_actor_setting_that_is_not_a_plain_name_is_refused(test_settings) -> None:
    out = await cli(test_settings, "list", ACTOR="bob\nModelVersionPromoted")
    assert out.returncode != 0
    assert "ACTOR=" in out.stderr and "Traceback" not in out.stderr
