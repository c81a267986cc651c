"""``python -m cli.monitor`` (`just monitor`): Prometheus on this machine, no Docker needed.

It scrapes every API process and worker started here (they announce themselves under
STATE_DIR/prometheus/targets) and prints where to look. Ctrl-C stops it.
"""

from __future__ import annotations

import signal
import socket
import sys
import time

from bootstrap import get_settings
from observability import prometheus
from observability.exposition import targets_dir

QUERIES = (
    "sum by (endpoint) (rate(request_count_total[1m]))",
    "max by (group, stream) (consumer_lag)",
    "max(relay_lag_positions)",
)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def main() -> int:
    """Start Prometheus against the announced targets and keep it running until a signal."""
    binary = prometheus.find_prometheus()
    if binary is None:
        print(f"error: prometheus is not installed: {prometheus.INSTALL_HINT}", file=sys.stderr)
        return 2
    settings = get_settings()
    listen = settings.observability.prometheus_listen
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or not _port_free(host or "127.0.0.1", int(port)):
        print(
            f"error: cannot listen on {listen} (PROMETHEUS_LISTEN): in use or invalid",
            file=sys.stderr,
        )
        return 2
    root = settings.files.state_dir / "prometheus"
    targets = targets_dir(settings.files.state_dir)
    targets.mkdir(parents=True, exist_ok=True)
    prometheus.prune_targets(targets)
    config = prometheus.write_config(root / "prometheus.yml", targets)
    proc = prometheus.start_prometheus(binary, config, root / "data", listen, root / "log.txt")
    url = f"http://{listen}"
    try:
        prometheus.wait_ready(url, proc)
    except RuntimeError as exc:
        print(f"error: {exc} (log: {root / 'log.txt'})", file=sys.stderr)
        proc.kill()
        return 1
    announced = sorted(p.name for p in targets.glob("*.json"))
    print(f"Prometheus   {url}   (targets: {url}/targets)")
    print(f"scraping     {len(announced)} process(es) announced in {targets}")
    for name in announced:
        print(f"             - {name.removesuffix('.json')}")
    print("             start more with `just serve` / `just worker`: picked up within 5 s")
    print("dashboard    ops/grafana/dashboards/platform.json (Grafana comes with `just up`)")
    for query in QUERIES:
        print(f"try          {url}/graph?g0.expr={query.replace(' ', '%20')}")
    print("Ctrl-C stops it.", flush=True)
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    try:
        while not stopping and proc.poll() is None:
            time.sleep(1)
            prometheus.prune_targets(targets)  # a killed process leaves its file behind
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main())
