"""`just bench-predict`: the bare PyTorch loop vs /predict and v2 infer at concurrency 1, 8, 32.

Both measurements run one after the other on this machine, on the prod version of the model.
Writes reports/bench_predict.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from bench.common import machine, running_api, scrape_histogram
from bench.loadtest import run_load, sample_images

console = Console(width=None if sys.stdout.isatty() else 140)


async def served_model(model_name: str):
    """The prod version's loaded module and metadata, verified like the server does."""
    import msgspec

    import bootstrap
    from events.registry import ArtifactMetadata
    from ml.artifacts import load_model
    from storage.artifacts import sha256_file

    p = await bootstrap.build_platform()
    try:
        version = await p.queries.require_prod(model_name)
        if version is None:
            raise SystemExit(f"error: {model_name} has no prod version; run `just demo` first")
        view = await p.queries.get_version(model_name, version)
        path = p.artifacts.path_for(view.artifact_uri)
        if sha256_file(path)[0] != view.sha256:
            raise SystemExit(f"error: {model_name} {version} fails its sha256 check")
        meta = msgspec.convert(view.metadata, ArtifactMetadata)
        return version, load_model(path, meta), meta
    finally:
        await p.aclose()


def bare_loop(model: torch.nn.Module, meta, images: np.ndarray, batch: int, iters: int) -> dict:
    """Time preprocessing + forward in a plain loop; images/s and per-forward latency."""
    from ml.preprocess import to_model_input

    batches = [images[(i * batch) % len(images) :][:batch] for i in range(8)]
    batches = [b if len(b) == batch else images[:batch] for b in batches]
    times = []
    with torch.inference_mode():
        for i in range(20):
            model(to_model_input(batches[i % 8], meta))
        start = time.perf_counter()
        for i in range(iters):
            t = time.perf_counter()
            model(to_model_input(batches[i % 8], meta))
            times.append(time.perf_counter() - t)
        wall = time.perf_counter() - start
    lat = np.array(times) * 1000
    return {
        "batch": batch,
        "iterations": iters,
        "images_per_s": round(batch * iters / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
    }


async def main_async(args: argparse.Namespace) -> dict:
    """Run every measurement and return the report."""
    import os

    from settings import get_settings

    # The bare loop runs at the machine's limit (all cores); the server uses its own setting.
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    threads = args.server_threads or get_settings().torch_threads
    version, model, meta = await served_model(args.model_name)
    images = sample_images(256)
    bare = [
        bare_loop(model, meta, images, 1, args.bare_iters),
        bare_loop(model, meta, images, 32, max(50, args.bare_iters // 16)),
    ]
    del model
    results = []
    async with running_api(
        **({"TORCH_THREADS": str(threads)} if args.server_threads else {})
    ) as url:
        for endpoint in ("predict", "v2"):
            for conc in (1, 8, 32):
                total = args.requests * (1 if conc == 1 else 2)
                before = await scrape_histogram(url, "batch_size")
                r = await run_load(
                    url,
                    args.model_name,
                    concurrency=conc,
                    total=total,
                    endpoint=endpoint,
                    images=images[:64],
                    warmup=200,
                )
                after = await scrape_histogram(url, "batch_size")
                batches = after[1] - before[1]
                row = asdict(r)
                row["mean_batch_size"] = (
                    round((after[0] - before[0]) / batches, 2) if batches else None
                )
                results.append(row)
                console.print(
                    f"{endpoint} c={conc}: {r.qps:,.0f} req/s p50 {r.p50_ms:.2f} ms errors {r.errors}"
                )
    b1 = bare[0]
    c32 = next(r for r in results if r["endpoint"] == "predict" and r["concurrency"] == 32)
    c1 = next(r for r in results if r["endpoint"] == "predict" and r["concurrency"] == 1)
    targets = {
        "c32_vs_bare_b1": round(c32["qps"] / b1["images_per_s"], 3),
        "c32_target_met": c32["qps"] >= 0.6 * b1["images_per_s"],
        "c1_p50_overhead_ms": round(c1["p50_ms"] - b1["p50_ms"], 3),
        "c1_target_met": c1["p50_ms"] <= b1["p50_ms"] + 1.5,
        "zero_errors": all(r["errors"] == 0 for r in results),
    }
    return {
        "server_torch_threads": threads,
        "model_name": args.model_name,
        "model_version": version,
        "machine": machine(),
        "bare_loop": bare,
        "http": results,
        "targets": targets,
    }


def print_report(report: dict) -> None:
    """The summary table."""
    table = Table(
        title=f"bench-predict: {report['model_name']} {report['model_version']} on {report['machine']['cores']} cores"
    )
    for col in (
        "run",
        "concurrency / batch",
        "img/s or req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "mean batch",
    ):
        table.add_column(col, justify="right")
    for b in report["bare_loop"]:
        table.add_row(
            "bare PyTorch loop",
            f"batch {b['batch']}",
            f"{b['images_per_s']:,.0f}",
            f"{b['p50_ms']:.2f}",
            "",
            f"{b['p99_ms']:.2f}",
            "0",
            str(b["batch"]),
        )
    for r in report["http"]:
        table.add_row(
            "/predict" if r["endpoint"] == "predict" else "v2 infer",
            f"c={r['concurrency']}",
            f"{r['qps']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p95_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            str(r["errors"]),
            str(r["mean_batch_size"]),
        )
    console.print(table)
    t = report["targets"]
    console.print(
        f"c=32 /predict reaches {t['c32_vs_bare_b1']:.2f}x the bare batch-1 loop (target 0.60x): "
        f"{'met' if t['c32_target_met'] else 'NOT met'}; c=1 p50 overhead {t['c1_p50_overhead_ms']:.2f} ms "
        f"(target <= 1.5): {'met' if t['c1_target_met'] else 'NOT met'}; zero errors: {t['zero_errors']}"
    )


def main() -> int:
    """Entry point."""
    p = argparse.ArgumentParser(prog="python -m bench.bench_predict")
    p.add_argument("--model_name", default="mnist_cnn")
    p.add_argument(
        "--requests", type=int, default=3000, help="requests per run at c=1 (twice that above)"
    )
    p.add_argument("--bare_iters", type=int, default=3000)
    p.add_argument(
        "--server_threads",
        type=int,
        default=None,
        help="TORCH_THREADS of the API (default: setting)",
    )
    p.add_argument("--out", type=Path, default=Path("reports/bench_predict.json"))
    args = p.parse_args()
    report = asyncio.run(main_async(args))
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    console.print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
