"""`just bench-predict`: the bare loop, a plain baseline server, and ours at 1 and N processes.

In one run on this machine, one after the other, on the prod version of the model:
- the bare PyTorch loop (preprocessing + forward, batch 1 and MAX_BATCH, on DEVICE);
- the baseline (bench/baseline_server.py: one request, one decode, one forward on the event
  loop, no batching) under the same load as ours;
- ``python -m api`` with 1 process (/predict and v2 infer) and with N processes (/predict).
Prints one table with ours ÷ baseline at each concurrency; writes JSON under reports/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from bench.common import (
    ROOT,
    child_env,
    ensure_prod_model,
    free_port,
    machine,
    running_api,
    scrape_histogram,
    served_model,
)
from bench.loadtest import run_load, sample_images
from bench.predict_report import print_report, targets
from ml.graph import serving_graph


def bare_loop(model, meta, images: np.ndarray, batch: int, iters: int, device, graph: str) -> dict:
    """Time preprocessing + forward (+ the copy back) in a plain loop; images/s and latency."""
    from ml.preprocess import Normalizer

    normalize = Normalizer.of(meta)
    batches = [images[(i * batch) % len(images) :][:batch] for i in range(8)]
    batches = [b if len(b) == batch else images[:batch] for b in batches]

    def step(b: np.ndarray) -> None:
        model(normalize(torch.from_numpy(b).to(device))).cpu()

    times = []
    with torch.inference_mode():
        for i in range(20):
            step(batches[i % 8])
        start = time.perf_counter()
        for i in range(iters):
            t = time.perf_counter()
            step(batches[i % 8])
            times.append(time.perf_counter() - t)
        wall = time.perf_counter() - start
    lat = np.array(times) * 1000
    return {
        "run": "bare loop",
        "graph": graph,
        "processes": 0,
        "batch": batch,
        "iterations": iters,
        "qps": round(batch * iters / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
    }


@asynccontextmanager
async def running_baseline(artifact: Path, version: str):
    """Start bench.baseline_server on a free port; yield its URL."""
    from cli.processes import stop_process, wait_healthy

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "bench.baseline_server",
        "--artifact",
        str(artifact),
        "--model_version",
        version,
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env())  # noqa: ASYNC220
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, proc, 1, timeout_s=120)
        yield url
    finally:
        stop_process(proc)


async def measure(url: str, run: str, processes: int, endpoint: str, conc: int, args) -> dict:
    """One closed-loop load run, with the mean batch size our servers formed meanwhile."""
    ours = run != "baseline"
    before = await scrape_histogram(url, "batch_size", processes) if ours else None
    r = await run_load(
        url,
        args.model_name,
        concurrency=conc,
        total=args.requests * (1 if conc == 1 else 2),
        endpoint=endpoint,
        images=args.images,
        warmup=200,
    )
    row = {"run": run, "processes": processes, **asdict(r), "mean_batch_size": 1.0}
    if ours:
        after = await scrape_histogram(url, "batch_size", processes)
        batches = after[1] - before[1]
        row["mean_batch_size"] = round((after[0] - before[0]) / batches, 2) if batches else None
    print(
        f"{run} x{processes} {endpoint} c={conc}: {r.qps:,.0f} req/s p50 {r.p50_ms:.2f} ms "
        f"p99 {r.p99_ms:.2f} ms errors {r.errors}",
        flush=True,
    )
    return row


async def main_async(args: argparse.Namespace) -> dict:
    """Every measurement, in one run; returns the report."""
    from ml.device import resolve_device
    from settings import get_settings

    s = get_settings()
    device = resolve_device(s.serving.device)
    # A fresh machine has no prod model: train one briefly rather than stop on a trace.
    await ensure_prod_model(args.model_name, args.arch or "mnist_cnn", args.train_limit)
    # The bare loop runs at the machine's limit (all cores); the servers use their settings.
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    version, model, meta, artifact = await served_model(args.model_name, str(device))
    args.images = sample_images(256)
    # The model as trained (what the baseline runs) and, where it serves, the frozen graph.
    graphs = {"eager": model}
    served = serving_graph(model, s.serving.inference_graph, device, (1, s.serving.max_batch))
    if served.kind == "frozen":
        graphs["frozen"] = served.run
    bare = [
        bare_loop(run, meta, args.images, batch, iters, device, kind)
        for kind, run in graphs.items()
        for batch, iters in (
            (1, args.bare_iters),
            (s.serving.max_batch, max(50, args.bare_iters // 16)),
        )
    ]
    del model, graphs, served
    if device.type == "cuda":
        torch.cuda.empty_cache()
    args.images = args.images[:64]
    runs: list[dict] = []
    async with running_baseline(artifact, version) as url:
        for conc in args.concurrency:
            runs.append(await measure(url, "baseline", 1, "predict", conc, args))
    for workers in sorted({1, *args.workers}):
        async with running_api(workers) as url:
            endpoints = ("predict", "v2") if workers == 1 and not args.no_v2 else ("predict",)
            for endpoint in endpoints:
                for conc in args.concurrency:
                    runs.append(await measure(url, "ours", workers, endpoint, conc, args))
    return {
        "model_name": args.model_name,
        "model_version": version,
        "architecture": meta.architecture,
        "machine": machine(str(device)),
        "settings": {
            "DEVICE": s.serving.device,
            "INFERENCE_GRAPH": s.serving.inference_graph,
            "MAX_BATCH": s.serving.max_batch,
            "API_WORKERS_N": args.workers,
            "TORCH_THREADS": s.serving.torch_threads,
            "TORCH_BATCH_THREADS": s.serving.torch_batch_threads,
        },
        "bare_loop": bare,
        "http": runs,
        "targets": targets(bare, runs),
    }


def main() -> int:
    """Entry point."""
    from settings import get_settings

    p = argparse.ArgumentParser(prog="python -m bench.bench_predict")
    p.add_argument("--model_name", default=None, help="default: mnist_cnn, or the --arch name")
    p.add_argument(
        "--arch",
        default=None,
        help="serve this architecture (e.g. resnet18); trains a short version if needed",
    )
    p.add_argument("--train_limit", type=int, default=10_000, help="images for that training")
    p.add_argument("--requests", type=int, default=3000, help="requests per run at c=1 (2x above)")
    p.add_argument("--bare_iters", type=int, default=3000)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[max(2, get_settings().api.workers)],
        help="N for the N-process run (default: API_WORKERS, at least 2)",
    )
    p.add_argument("--no_v2", action="store_true", help="skip the v2 infer runs")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    args.model_name = args.model_name or args.arch or "mnist_cnn"
    if min(args.workers) < 1 or args.requests < 1 or min(args.concurrency) < 1:
        p.error("--workers, --requests and --concurrency must be positive")
    report = asyncio.run(main_async(args))
    print_report(report)
    device = report["machine"].get("device", "cpu").split(" ")[0].split(":")[0]
    out = args.out or Path(f"reports/bench_predict_{args.model_name}_{device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
