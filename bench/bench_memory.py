"""``just bench-memory``: the proportional memory (PSS) of each process of an idle ``python -m api``.

Starts the API with its default settings (``API_WORKERS`` processes) on the embedded servers, or
on DATABASE_URL / REDIS_URL, with a prod model (trained briefly if there is none), sends each
serving process a /predict so its model is loaded, and measures every process once they settle.
Beside them: a bare ``python -c "import torch"`` process, measured while the API runs (PSS
splits torch's shared library pages among the processes that map them), and the model's size.
Targets: the supervisor <= 60 MB and without torch; each serving process <= torch's import +
the models + 100 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.common import ROOT, child_env, ensure_prod_model, free_port, machine
from bench.process_memory import torch_import_mb, tree_pss
from cli.processes import stop_process, wait_healthy

SUPERVISOR_MAX_MB = 60
SERVING_OVER_MB = 100  # beyond torch's import and the models


def _png_b64() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (28, 28), 128).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


async def predict_on_each(url: str, model_name: str, pids: set[str]) -> None:
    """One /predict answered by every serving process (fresh connections reach each in turn)."""
    body = {"model_name": model_name, "image_b64": _png_b64()}
    answered: set[str] = set()
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        for _ in range(200 * len(pids)):
            r = await client.post("/predict", json=body)
            if r.status_code != 200:
                raise SystemExit(f"error: /predict answered {r.status_code}: {r.text[:300]}")
            answered.add(r.headers.get("x-server-pid", "?"))
            if answered >= pids:
                return
    raise SystemExit(f"error: only {sorted(answered)} of {sorted(pids)} answered /predict")


def model_size(model_name: str) -> dict:
    """The prod version's parameters and buffers (what each serving process holds of it)."""
    from bench.common import served_model

    version, module, meta, path = asyncio.run(served_model(model_name))
    tensors = list(module.state_dict().values())
    return {
        "model_name": model_name,
        "model_version": version,
        "architecture": meta.architecture,
        "parameters": sum(t.numel() for t in module.parameters()),
        "state_dict_mb": round(sum(t.numel() * t.element_size() for t in tensors) / 1e6, 2),
        "artifact_mb": round(path.stat().st_size / 1e6, 2),
    }


async def measure_api(args: argparse.Namespace, workers: int) -> tuple[list[dict], dict]:
    """Start the API, load the model in each process, let it settle, measure its tree and,
    at the same time, a bare torch import (so both share torch's library pages alike)."""
    port = free_port()
    env = child_env(HOST="127.0.0.1", PORT=str(port), ARTIFACTS_DIR=args.artifacts)
    # --api_root: another checkout's API (e.g. an older commit's), measured the same way.
    proc = subprocess.Popen([sys.executable, "-m", "api"], cwd=args.api_root, env=env)  # noqa: ASYNC220
    url = f"http://127.0.0.1:{port}"
    try:
        pids = await wait_healthy(
            url, proc, workers, timeout_s=300 + 60 * workers
        )  # a busy machine starts slowly
        await predict_on_each(url, args.model_name, pids)
        await asyncio.sleep(args.settle_s)
        return tree_pss(proc.pid), torch_import_mb()
    finally:
        stop_process(proc)


def report(args: argparse.Namespace) -> dict:
    """Every measurement of one run."""
    from settings import get_settings

    workers = get_settings().api.workers
    # Absolute, so that an API run from --api_root finds this checkout's artifacts.
    args.artifacts = str(Path(get_settings().files.artifacts_dir).resolve())
    asyncio.run(ensure_prod_model(args.model_name, args.arch, args.train_limit))
    model = model_size(args.model_name)
    processes, torch_alone = asyncio.run(measure_api(args, workers))
    serving = [p for p in processes if p["role"] == "serving"]
    supervisor = next((p for p in processes if p["role"] == "supervisor"), None)
    serving_max = torch_alone["pss_mb"] + model["state_dict_mb"] + SERVING_OVER_MB
    return {
        "machine": machine(),
        "api_workers": workers,
        "api_root": str(args.api_root),
        "model": model,
        "torch_import": torch_alone,
        "processes": processes,
        "total_pss_mb": round(sum(p["pss_mb"] for p in processes), 1),
        "targets": {
            "supervisor_max_mb": SUPERVISOR_MAX_MB,
            "supervisor_ok": supervisor is None
            or (supervisor["pss_mb"] <= SUPERVISOR_MAX_MB and not supervisor["torch"]),
            "serving_max_mb": round(serving_max, 1),
            "serving_ok": all(p["pss_mb"] <= serving_max for p in serving),
            "serving_over_torch_and_model_mb": [
                round(p["pss_mb"] - torch_alone["pss_mb"] - model["state_dict_mb"], 1)
                for p in serving
            ],
        },
    }


def print_report(r: dict) -> None:
    """The table: one row per process, then the bare torch import and the targets."""
    print(f"\npython -m api, API_WORKERS={r['api_workers']}, {r['model']['model_name']} loaded")
    print(f"{'process':<22}{'PSS MB':>9}{'RSS MB':>9}{'USS MB':>9}  torch")
    for p in r["processes"]:
        name = f"{p['role']} {p['pid']}"
        print(f"{name:<22}{p['pss_mb']:>9.1f}{p['rss_mb']:>9.1f}{p['uss_mb']:>9.1f}  {p['torch']}")
    t = r["torch_import"]
    print(f"{'import torch alone':<22}{t['pss_mb']:>9.1f}{t['rss_mb']:>9.1f}{t['uss_mb']:>9.1f}")
    m = r["model"]
    print(f"model {m['architecture']}: {m['state_dict_mb']} MB of tensors ({m['parameters']:,})")
    g = r["targets"]
    print(f"total PSS {r['total_pss_mb']} MB")
    print(
        f"supervisor <= {g['supervisor_max_mb']} MB, no torch: {'ok' if g['supervisor_ok'] else 'MISSED'}"
    )
    over = ", ".join(f"{v:+.1f}" for v in g["serving_over_torch_and_model_mb"])
    print(
        f"serving <= {g['serving_max_mb']} MB (torch + model + {SERVING_OVER_MB}): "
        f"{'ok' if g['serving_ok'] else 'MISSED'} (over torch + model: {over} MB)"
    )


def main() -> int:
    """Entry point."""
    p = argparse.ArgumentParser(prog="python -m bench.bench_memory", description=__doc__)
    p.add_argument("--model_name", default="mnist_cnn")
    p.add_argument("--arch", default="mnist_cnn", help="trained briefly if the model has no prod")
    p.add_argument("--train_limit", type=int, default=10_000)
    p.add_argument("--settle_s", type=float, default=3.0, help="idle time before measuring")
    p.add_argument("--out", type=Path, default=Path("reports/api_memory.json"))
    p.add_argument("--api_root", type=Path, default=ROOT, help="the checkout whose API to run")
    args = p.parse_args()
    started = time.monotonic()
    r = report(args)
    r["seconds"] = round(time.monotonic() - started, 1)
    print_report(r)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(r, indent=2))
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
