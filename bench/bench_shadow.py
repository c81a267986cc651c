"""`just bench-shadow`: shadow and canary (issue 24) on this machine, in one run.

In a scratch STATE_DIR (its own embedded PostgreSQL and Redis, removed at the end unless
--keep), with real trained models (bench/shadow_models.py: prod, an equal candidate trained
with another seed, a worse one trained one epoch on 50,000 images (3 points worse); cached under
.platform/cache/bench_shadow), the API started as `python -m api` (API_WORKERS processes) and
one worker (`python -m consumers`, every group, shadow-evaluation and traffic-recorder included):
1. prod's c=32 load with no shadow, a shadow at fraction 0.1 and at 1.0 (bench/shadow_load.py);
2. a canary (steps 20,50,100, default margins) of the worse candidate, then of the equal one,
   driven with Fashion-MNIST test images and their true labels (bench/shadow_canary.py).
Prints the tables and writes reports/bench_shadow.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console

console = Console()


def log(text: str) -> None:
    """A progress line with the time."""
    console.log(text)


async def main_async(args: argparse.Namespace) -> dict:
    """Every measurement, in one run; the report."""
    import bootstrap
    from bench.common import machine, running_api
    from bench.load_requests import sample_images
    from bench.shadow_canary import STEPS, Traffic, run_canary
    from bench.shadow_cpu import drain
    from bench.shadow_load import load_phase, ratios
    from bench.shadow_models import CACHE, RECIPES, cli, register_all, trained
    from cli.processes import start_worker, stop_process
    from ml.datasets import load_dataset
    from settings import get_settings

    s = get_settings()
    args.api_processes = s.api.workers
    started = time.perf_counter()
    data_cache = CACHE.parent  # decoded datasets outlive the scratch folder
    models = [trained(r, s.files.data_dir, data_cache) for r in RECIPES]
    for m in models:
        how = "cached" if m.train_s is None else f"trained in {m.train_s:.0f} s"
        log(f"{m.recipe.role} {m.recipe.version}: test accuracy {m.accuracy:.2%} ({how})")
    by_role = {m.recipe.role: m for m in models}
    name = args.model_name
    await asyncio.to_thread(register_all, name, models)
    log(f"{name}: {', '.join(m.recipe.version for m in models)} registered, v1 promoted")
    worker = start_worker()
    report: dict = {}
    redis = None
    try:
        async with running_api(s.api.workers) as url:
            log(f"API at {url} ({s.api.workers} processes), worker pid {worker.pid}")
            images = sample_images(256)
            redis = bootstrap.create_redis(bootstrap.redis_url())
            candidate = by_role["equal"].recipe.version
            load = await load_phase(url, name, candidate, images, args, log, worker.pid, redis)
            load["rounds_each"] = args.rounds
            load["ratios"] = ratios(load["arms"], load["rounds"])
            report["load"] = load
            # Feedback for every request, prod's included, needs them captured: a user's policy.
            cli("capture", name, "--fraction", "1", "--max-per-s", "10000", "--reason", "bench")
            test = load_dataset(
                "fashion_mnist_10000", data_dir=s.files.data_dir, cache_dir=data_cache
            )
            traffic = Traffic(url, name, test.images.numpy(), test.labels.numpy())
            report["catch_up_before_canaries_s"] = await drain(redis)
            report["canaries"] = []
            for role in () if args.no_canaries else ("worse", "equal"):
                version = by_role[role].recipe.version
                log(f"canary of {version} ({role}), steps {STEPS}")
                report["canaries"].append(await run_canary(url, name, version, traffic, args, log))
            async with httpx.AsyncClient(base_url=url) as client:
                body = {"model_name": name, "image_b64": traffic_png(traffic)}
                r = await client.post("/predict", json=body)
                report["prod_after"] = r.json()["model_version"]
    finally:
        stop_process(worker)
        if redis is not None:
            await redis.aclose()
    report.update(
        model_name=name,
        models=[
            {
                "role": m.recipe.role,
                "version": m.recipe.version,
                "epochs": m.recipe.epochs,
                "seed": m.recipe.seed,
                "train_images": m.recipe.train_limit or 60_000,
                "accuracy": m.accuracy,
                "train_s": m.train_s,
            }
            for m in models
        ],
        machine=machine("cpu"),
        settings={
            "api_processes": s.api.workers,
            "concurrency": args.concurrency,
            "load_requests": args.load_requests,
            "canary_concurrency": args.canary_concurrency,
            "steps": STEPS,
            "min_requests": 500,
            "margins": {
                "accuracy": 0.01,
                "errors": 0.01,
                "latency": 0.2,
                "alpha": 0.05,
                "min_labelled": 200,
            },
        },
        wall_s=round(time.perf_counter() - started, 1),
    )
    report["targets"] = _targets(report)
    return report


def traffic_png(traffic) -> str:
    """The first test image's PNG (base64) back out of its request body."""
    return json.loads(traffic.bodies[0])["image_b64"]


def _targets(report: dict) -> dict[str, bool]:
    t = dict(report["load"]["ratios"]["targets"])
    if not report["canaries"]:  # --no_canaries: the load's targets only
        return t
    worse, equal = report["canaries"]
    t["worse canary aborted before 6,000 labelled"] = (
        worse["outcome"] == "ABORTED" and worse["labelled"] < 6000
    )
    t["equal canary promoted"] = equal["outcome"] == "PROMOTED"
    return t


def main() -> int:
    """Entry point."""
    p = argparse.ArgumentParser(prog="python -m bench.bench_shadow", description=__doc__)
    p.add_argument("--model_name", default="mnist_cnn")
    p.add_argument("--rounds", type=int, default=5, help="rounds of each load arm")
    p.add_argument("--load_requests", type=int, default=10_000, help="requests per round")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--canary_concurrency", type=int, default=4, help="clients during canaries")
    p.add_argument("--max_labelled", type=int, default=60_000, help="give a canary up after")
    p.add_argument("--max_canary_s", type=float, default=300.0, help="give a canary up after")
    p.add_argument("--no_canaries", action="store_true", help="the load phase only")
    p.add_argument("--state_dir", type=Path, default=None, help="default: a new temp folder")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder and servers")
    p.add_argument("--out", type=Path, default=Path("reports/bench_shadow.json"))
    args = p.parse_args()
    args.api_processes = None  # set once the settings are read
    if min(args.rounds, args.load_requests, args.concurrency, args.canary_concurrency) < 1:
        p.error("--rounds, --load_requests and the concurrencies must be positive")
    scratch = args.state_dir or Path(tempfile.mkdtemp(prefix="bench-shadow-"))
    args.scratch = scratch
    # The bench's own servers and artifact store, whatever the environment points at.
    os.environ.update(STATE_DIR=str(scratch), ARTIFACTS_DIR=str(scratch / "artifacts"))
    for var in ("DATABASE_URL", "REDIS_URL", "MIGRATION_DATABASE_URL"):
        os.environ.pop(var, None)
    from bench.shadow_report import print_report

    try:
        report = asyncio.run(main_async(args))
    finally:
        if not args.keep:
            import bootstrap
            from settings import get_settings

            bootstrap.stop_embedded_servers(get_settings())
            shutil.rmtree(scratch, ignore_errors=True)
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    console.print(f"report: {args.out}")
    return 0 if all(report["targets"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
