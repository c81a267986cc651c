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

# The online events the test records, in log order.
ONLINE_EVENTS = (
    "CapturePolicySet",
    "ShadowStarted",
    "ShadowStopped",
    "CanaryStarted",
    "CanaryAborted",
    "TrafficDatasetFrozen",
)


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


async def test_history_and_replay_show_the_online_and_traffic_events(
    client, platform, test_settings, model_name, state_dict_file
) -> None:
    from datetime import UTC, datetime

    import numpy as np

    from domain.online.commands import AbortCanary, StartCanary, StartShadow, StopShadow
    from domain.traffic.commands import FreezeTrafficDataset, RecordCaptured, SetCapturePolicy
    from events.base import EventMetadata
    from events.traffic import CapturedRow

    for seed, version in enumerate(("v1", "v2")):
        body = {"model_version": version, "artifact_path": str(state_dict_file(f"{seed}.pt", seed))}
        r = await client.post(f"/models/{model_name}/versions", json=body)
        assert r.status_code == 201, r.text
    assert (await client.post(f"/models/{model_name}/versions/v1/promote", json={})).is_success
    meta = EventMetadata(actor="online-tester")
    bus = platform.bus
    await bus.handle(
        SetCapturePolicy(
            model_name=model_name, fraction=0.05, max_per_s=20, retention_days=14, metadata=meta
        )
    )
    await bus.handle(StartShadow(model_name=model_name, version="v2", fraction=0.2, metadata=meta))
    await bus.handle(StopShadow(model_name=model_name, reason="seen enough", metadata=meta))
    await bus.handle(
        StartCanary(model_name=model_name, version="v2", steps=[5, 50, 100], metadata=meta)
    )
    await bus.handle(AbortCanary(model_name=model_name, reason="night shift", metadata=meta))
    row = CapturedRow(
        request_id=f"{model_name}-r1",
        model_name=model_name,
        model_version="v1",
        captured_at=datetime.now(UTC),
        input=np.zeros((28, 28), np.uint8).tobytes(),
        input_dtype="uint8",
        prediction=1,
        scores=[0.1] * 10,
        latency_ms=2.0,
        retention_days=7,
    )
    assert await bus.handle(RecordCaptured(rows=[row])) == 1
    dataset = f"traffic:{model_name}"
    await bus.handle(FreezeTrafficDataset(model_name=model_name, dataset_id=dataset, metadata=meta))

    wide = await cli(test_settings, "history", model_name, "--wide", "--reverse")
    assert wide.returncode == 0, wide.stderr
    out = wide.stdout
    for line in (
        "capture policy: 5.0% of requests, at most 20/s per API process, kept 14 days",
        "started: v2 answers 20% of prod v1's requests",
        "stopped by hand",
        "started: v2 vs prod v1, steps 5% → 50% → 100%, 500 requests a step",
        "ABORTED at step 1 by hand: night shift",
        f"froze 1 captured requests into {dataset} (0 labelled",
    ):
        assert line in out, (line, out)
    order = [out.index(t) for t in ONLINE_EVENTS]
    assert order == sorted(order), out  # oldest first, merged by log position

    replay = await cli(test_settings, "replay", "--model", model_name)
    assert replay.returncode == 0, replay.stderr
    kinds = re.findall(
        r"\b(CapturePolicySet|Shadow\w+|Canary\w+|TrafficDatasetFrozen)\b", replay.stdout
    )
    assert kinds == list(ONLINE_EVENTS), replay.stdout
    assert f"{model_name} v2" in replay.stdout  # a canary's line names its candidate
