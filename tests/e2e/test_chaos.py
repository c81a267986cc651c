"""`just chaos` on real namespaces: a worker host partitioned mid-job, lossy links to the data
host, and the relay leader's host partitioned (the fault tcp_user_timeout fixed: the server
kept the cut-off leader's session, and its lock, for as long as it retransmitted a NOTIFY).

Needs root (network namespaces, a bridge, TUN devices); CI runs as root, so there is no skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _run(
    *argv: str, user: str | None = None, timeout_s: float = 900
) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "bench.chaos", *argv]
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def _not_logs(stderr: str) -> str:
    """The last 3,000 characters of ``stderr`` that are not structlog JSON lines."""
    return "\n".join(line for line in stderr.splitlines() if not line.startswith("{"))[-3000:]


@pytest.mark.timeout(900)
def test_partition_loss_and_leader_keep_every_shard_once(tmp_path) -> None:
    assert os.geteuid() == 0, (
        "tests/e2e/test_chaos.py needs root: it builds network namespaces, veth pairs, a bridge "
        "and TUN devices (run the suite as root, as CI does)"
    )
    report = tmp_path / "chaos.json"
    r = _run("partition", "loss", "leader", "--json", str(report))
    assert report.exists(), r.stdout[-3000:] + r.stderr[-3000:]
    rows = {row["scenario"]: row for row in json.loads(report.read_text())["scenarios"]}
    assert len(rows) == 3, rows
    for name, row in rows.items():
        assert row["lost"] == 0, (name, row)
        assert row["duplicated"] == 0, (name, row)
        assert row["identical"], (name, row)  # the clean run's accuracy, confusion matrix, F1s
        # The audit's findings are in the run's stderr, among the cluster's JSON log lines.
        assert row["audit_clean"], (name, row, _not_logs(r.stderr))
        assert not [n for n in row["notes"] if n.startswith("FAIL")], (name, row)
        assert row["ok"], (name, row)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "partition a worker host" in r.stdout and "audit clean" in r.stdout
    assert not subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.count(
        "chaos-"
    ), "the namespaces outlived the run"
