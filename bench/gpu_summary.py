"""Compact text summary of the JSON reports in a folder (bench/gpu_run.sh prints it last)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def predict_lines(r: dict) -> list[str]:
    """One line per bare loop and load run."""
    m = r["machine"]
    lines = [
        f"## predict {r['model_name']} ({r['architecture']}) on {m.get('device')} "
        f"{m['cores']} cores, torch {m['torch']}"
    ]
    for b in r["bare_loop"]:
        lines.append(
            f"bare b={b['batch']}: {b['qps']:.0f}/s p50 {b['p50_ms']:.2f} p99 {b['p99_ms']:.2f}"
        )
    base = {x["concurrency"]: x for x in r["http"] if x["run"] == "baseline"}
    for x in r["http"]:
        b = base.get(x["concurrency"])
        ratio = f" {x['qps'] / b['qps']:.2f}x" if b and x["run"] != "baseline" else ""
        lines.append(
            f"{x['run']} x{x['processes']} {x['endpoint']} c={x['concurrency']}: {x['qps']:.0f}/s "
            f"p50 {x['p50_ms']:.2f} p99 {x['p99_ms']:.2f} err {x['errors']} "
            f"batch {x['mean_batch_size']}{ratio}"
        )
    lines.append("targets " + json.dumps(r["targets"], separators=(",", ":")))
    return lines


def batch_lines(r: dict) -> list[str]:
    """One line per run."""
    lines = [f"## batch {r['model_name']} on {r['machine'].get('device')}"]
    for x in r["runs"]:
        lines.append(f"{x['run']}: {x['images_per_s']:.0f} img/s ({x['vs_bare']:.2f}x)")
    return lines


def profile_lines(r: dict) -> list[str]:
    """Per-request µs by stage, per concurrency."""
    lines = [f"## profile {r['model_name']}"]
    for p in r["profiles"]:
        lines.append(
            f"c={p['concurrency']}: {p['req_per_s']:.0f}/s p50 {p['p50_ms']:.2f} "
            f"queue wait {p['queue_wait_us_mean']} us"
        )
        for kind, stages in p["us_per_request"].items():
            lines.append(f"  {kind}: " + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()))
    return lines


def main() -> None:
    """Print every report found in the folder given (default: reports/)."""
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "reports")
    for path in sorted(folder.glob("*.json")):
        r = json.loads(path.read_text())
        if "bare_loop" in r:
            lines = predict_lines(r)
        elif "runs" in r:
            lines = batch_lines(r)
        elif "profiles" in r:
            lines = profile_lines(r)
        else:
            continue
        print("\n".join(lines))


if __name__ == "__main__":
    main()
