"""A local Prometheus (Debian's package) scraping the processes announced under a targets folder.

`just monitor` and the dashboard test both start it through ``start_prometheus``: every API
process and worker writes a file_sd entry (observability.exposition.announce_target), so
Prometheus finds each of them, whatever free port it got, and drops the ones that stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

INSTALL_HINT = "apt-get install prometheus (Debian's package), or put a prometheus binary on PATH"


def find_prometheus() -> str | None:
    """The prometheus binary on PATH (Debian installs /usr/bin/prometheus), None if missing."""
    return shutil.which("prometheus")


def write_config(path: Path, targets_dir: Path, scrape_interval_s: float = 5.0) -> Path:
    """A prometheus.yml scraping every target file of ``targets_dir`` (JSON is valid YAML)."""
    interval = f"{max(1, round(scrape_interval_s * 1000))}ms"
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                # The job label comes from each target file (platform-api, platform-worker).
                "job_name": "platform",
                "metrics_path": "/metrics",
                "file_sd_configs": [
                    {"files": [str(targets_dir / "*.json")], "refresh_interval": "5s"}
                ],
            }
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    return path


def prune_targets(targets_dir: Path) -> list[Path]:
    """Remove target files of processes on this host that are gone (killed, not stopped)."""
    removed = []
    for path in targets_dir.glob("*.json"):
        try:
            pid = int(json.loads(path.read_text())[0]["labels"]["pid"])
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
            removed.append(path)
        except PermissionError:
            pass  # alive, owned by someone else
    return removed


def start_prometheus(
    binary: str, config: Path, data_dir: Path, listen: str, log_path: Path
) -> subprocess.Popen:
    """Start Prometheus (its lifecycle and admin APIs stay off, as they are by default)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    try:
        return subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={data_dir}",
                f"--web.listen-address={listen}",
                "--storage.tsdb.retention.time=2d",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    """Poll /-/ready until Prometheus answers; RuntimeError if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as reply:  # noqa: S310
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"prometheus at {url} was not ready within {timeout_s:.0f}s")
        time.sleep(0.2)


def api_get(url: str, path: str, **params: str) -> dict:
    """GET a Prometheus HTTP API path; the decoded JSON body (errors included)."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    try:
        with urllib.request.urlopen(f"{url}{path}{query}", timeout=10) as reply:  # noqa: S310
            return json.loads(reply.read())
    except urllib.error.HTTPError as exc:  # 400/422: a bad query, with the reason in the body
        return json.loads(exc.read() or b"{}")
