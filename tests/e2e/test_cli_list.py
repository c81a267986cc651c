"""`just list` (python -m cli list) run as an operator runs it, against the test servers."""

from __future__ import annotations

import os
import subprocess
import sys

import anyio
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.anyio


async def _cli_list(settings, *args: str) -> str:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database.url,
        "REDIS_URL": settings.redis.url,
        "ARTIFACTS_DIR": str(settings.files.artifacts_dir),
        "LOG_LEVEL": "warning",
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "cli", "list", *args]
    # In a thread: the app under test shares this event loop.
    out = await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
        )
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


async def test_list_without_a_name_fills_sha256_and_accuracy(
    client, test_settings, model_name, state_dict_file
) -> None:
    shas = {}
    for version, accuracy, seed in (("v1", 0.8125, 1), ("v2", 0.9375, 2)):
        r = await client.post(
            f"/models/{model_name}/versions",
            json={
                "model_version": version,
                "artifact_path": str(state_dict_file(f"{version}.pt", seed)),
                "metadata": {"test_metrics": {"accuracy": accuracy}},
            },
        )
        assert r.status_code == 201, r.text
        shas[version] = r.json()["sha256"]

    for args in ((), (model_name,)):
        lines = [
            line
            for line in (await _cli_list(test_settings, *args)).splitlines()
            if line.startswith("│") and model_name in line
        ]
        assert len(lines) == 2, (args, lines)
        by_version = {v: next(line for line in lines if f" {v} " in line) for v in shas}
        for version, accuracy in (("v1", "81.25%"), ("v2", "93.75%")):
            row = by_version[version]
            assert shas[version][:12] in row and accuracy in row, (args, row)
            # No job yet: the registration's own figure, saying what it does not know.
            assert "(dataset not recorded, at registration)" in row, row
