"""`just bench-batch`: images/s over fashion_mnist_10000, the whole pipeline vs the bare loops.

Runs, one after the other on this machine: the bare PyTorch loop at the job's batch size on the
eager model and on the frozen graph (built as serving and the workers build it, ml.graph); the
pipeline (submit -> jobs.events -> batch-inference shards -> metric-aggregation) with 1 worker;
the same with 2 workers. Workers are warmed up first (model and dataset loaded), as
long-running workers are. Each run is compared with the bare loop of the graph the workers run
(INFERENCE_GRAPH: frozen on the CPU under auto). Everything runs on DEVICE (the workers inherit
it); ``--arch`` serves another architecture (trained briefly if it has no prod version).
Writes reports/bench_batch_<model>_<device>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from bench.common import ensure_prod_model, machine, served_model
from cli.processes import start_worker

console = Console(width=None if sys.stdout.isatty() else 140)
DATASET = "fashion_mnist_10000"
TARGET = 0.95  # 1 worker / the bare loop of the graph the workers run


def bare_loop(run, graph: str, meta, images: torch.Tensor, batch_size: int, device) -> dict:
    """Preprocess + forward over the dataset in a plain loop (predictions back on the CPU)."""
    from ml.preprocess import Normalizer

    normalize = Normalizer.of(meta)

    def step(batch: torch.Tensor) -> None:
        run(normalize(batch.to(device))).argmax(1).cpu()

    with torch.inference_mode():
        # The shapes the loop meets, a few times: the graph's profiling runs and oneDNN's
        # primitives are set up before the clock starts, as in a warm worker.
        tail = len(images) % batch_size
        for _ in range(3):
            step(images[:batch_size])
            if tail:
                step(images[-tail:])
        start = time.perf_counter()
        for i in range(0, len(images), batch_size):
            step(images[i : i + batch_size])
        wall = time.perf_counter() - start
    return {
        "run": f"bare loop, {graph}",
        "graph": graph,
        "workers": 0,
        "images": len(images),
        "seconds": round(wall, 3),
        "images_per_s": round(len(images) / wall, 1),
    }


def start_workers(count: int, threads: int) -> list[subprocess.Popen]:
    """Worker processes on the same servers as this process."""
    return [start_worker(TORCH_THREADS=str(threads)) for _ in range(count)]


def stop_workers(procs: list[subprocess.Popen]) -> None:
    """SIGTERM and wait."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=120)  # a loaded machine can take a while to stop one


async def timed_job(
    p, name: str, version: str, dataset: str, batch_size: int, workers: list[subprocess.Popen]
) -> tuple[float, dict]:
    """Submit and wait; returns (seconds from submit to metrics recorded, metrics)."""
    from domain.jobs.commands import SubmitBatchJob
    from events.base import EventMetadata

    start = time.time()
    submit = SubmitBatchJob(
        model_name=name,
        dataset_id=dataset,
        batch_size=batch_size,
        model_version=version,
        limited=False,
        metadata=EventMetadata(actor="bench"),
    )
    job = await p.bus.handle(submit)
    while True:
        view = await p.job_queries.get(job.job_id)
        if view.status in ("succeeded", "failed", "cancelled"):
            break
        dead = [w.returncode for w in workers if w.poll() is not None]
        if dead:
            raise SystemExit(f"error: a worker exited with code {dead[0]} during the benchmark")
        # Seldom: each look is a query that takes CPU from the worker being measured; the
        # time comes from the log's record of the completion, not from when it was seen.
        await asyncio.sleep(0.25)
    elapsed = view.finished_at.timestamp() - start if view.finished_at else time.time() - start
    if view.status != "succeeded":
        raise SystemExit(f"error: benchmark job {view.status}: {view.error}")
    return elapsed, view.result_metrics or {}


async def main_async(args: argparse.Namespace) -> dict:
    """All three runs."""
    import bootstrap
    from ml.datasets import load_dataset
    from ml.device import resolve_device
    from ml.graph import serving_graph, wanted
    from ml.serving import BatchingConfig

    # Torch threads of the bare loops and of the one worker; two workers share them.
    cores = args.threads or len(os.sched_getaffinity(0))
    # A fresh machine has no prod model: train one briefly rather than stop on a trace.
    await ensure_prod_model(args.model_name, args.arch or "mnist_cnn", args.train_limit)
    p = await bootstrap.build_platform()
    device = resolve_device(p.settings.serving.device)
    try:
        version, model, meta, _ = await served_model(args.model_name, str(device))
        data = load_dataset(
            DATASET, data_dir=p.settings.files.data_dir, cache_dir=p.settings.files.cache_dir
        )
        torch.set_num_threads(cores)
        # The frozen graph as the workers build it: traced, frozen, checked at batch 1 and
        # MAX_BATCH against the model (ml.graph).
        sizes = (1, BatchingConfig().max_batch)
        frozen = serving_graph(model, "frozen", device, sizes)
        if frozen.kind != "frozen":
            raise SystemExit(f"error: no frozen graph for {args.model_name}: {frozen.reason}")
        runs = [
            bare_loop(run, graph, meta, data.images, args.batch_size, device)
            for run, graph in ((model, "eager"), (frozen.run, "frozen"))
        ]
        del model, frozen
        for r in runs:
            console.print(f"{r['run']}: {r['images_per_s']:,.0f} images/s")
        for workers in (1, 2):
            procs = start_workers(workers, max(1, cores // workers))
            try:
                # Warm-up: every worker loads the model and the dataset once, as a long-lived one has.
                await timed_job(p, args.model_name, version, DATASET, args.batch_size, procs)
                seconds, metrics = await timed_job(
                    p, args.model_name, version, DATASET, args.batch_size, procs
                )
            finally:
                stop_workers(procs)
            runs.append(
                {
                    "run": f"pipeline, {workers} worker{'s' if workers > 1 else ''}",
                    "workers": workers,
                    "images": metrics.get("images"),
                    "seconds": round(seconds, 3),
                    "images_per_s": round(metrics["images"] / seconds, 1),
                    "accuracy": metrics.get("accuracy"),
                    "compute_images_per_s": metrics.get("throughput_images_per_s"),
                }
            )
            console.print(f"{workers} worker(s): {runs[-1]['images_per_s']:,.0f} images/s")
    finally:
        await p.aclose()
    setting = p.settings.serving.inference_graph
    worker_graph = "frozen" if wanted(setting, device) else "eager"
    bare = {r["graph"]: r["images_per_s"] for r in runs if r["workers"] == 0}
    for r in runs:
        r["vs_bare"] = round(r["images_per_s"] / bare[worker_graph], 3)
        r["vs_frozen_bare"] = round(r["images_per_s"] / bare["frozen"], 3)
        r["vs_eager_bare"] = round(r["images_per_s"] / bare["eager"], 3)
    one_worker = next(r for r in runs if r["workers"] == 1)
    return {
        "model_name": args.model_name,
        "model_version": version,
        "dataset": DATASET,
        "batch_size": args.batch_size,
        "shard_size": p.settings.batch.shard_size,
        "torch_threads": cores,
        "machine": machine(str(device)),
        "architecture": meta.architecture,
        "inference_graph": setting,
        "worker_graph": worker_graph,
        "bare_images_per_s": bare,
        "runs": runs,
        "one_worker_vs_frozen_bare": one_worker["vs_frozen_bare"],
        "target": f"1 worker >= {TARGET}x the {worker_graph} bare loop",
        "target_met": one_worker["vs_bare"] >= TARGET,
    }


def main() -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(prog="python -m bench.bench_batch")
    ap.add_argument("--model_name", default=None, help="default: mnist_cnn, or the --arch name")
    ap.add_argument("--arch", default=None, help="e.g. resnet18; trains a short version if needed")
    ap.add_argument("--train_limit", type=int, default=10_000, help="images for that training")
    ap.add_argument("--batch_size", type=int, default=256)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the bare loops and the 1 worker (default: the cores); 1 keeps "
        "OpenMP's barriers out of the figures on a machine that other work is loading",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.model_name = args.model_name or args.arch or "mnist_cnn"
    report = asyncio.run(main_async(args))
    where = report["machine"].get("device", "cpu")
    table = Table(
        title=f"bench-batch: {report['model_name']} {report['model_version']} on {DATASET}, "
        f"batch {args.batch_size}, {where}, {report['torch_threads']} torch thread(s)"
    )
    for col in ("run", "images", "seconds", "images/s", "vs frozen bare", "vs eager bare"):
        table.add_column(col, justify="right")
    for r in report["runs"]:
        table.add_row(
            r["run"],
            f"{r['images']:,}",
            f"{r['seconds']:.2f}",
            f"{r['images_per_s']:,.0f}",
            f"{r['vs_frozen_bare']:.2f}x",
            f"{r['vs_eager_bare']:.2f}x",
        )
    console.print(table)
    console.print(
        f"workers run the {report['worker_graph']} graph (INFERENCE_GRAPH="
        f"{report['inference_graph']}); 1 worker / frozen bare loop: "
        f"{report['one_worker_vs_frozen_bare']:.2f}x; target ({report['target']}): "
        f"{'met' if report['target_met'] else 'NOT met'}"
    )
    out = args.out or Path(
        f"reports/bench_batch_{args.model_name}_{where.split(' ')[0].split(':')[0]}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    console.print(f"report: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
