"""`just bench-predict`: ours against the machine's limit, a tuned peer and the original design.

In one run on this machine, one after the other, with the same load generator
(bench/loadtest.py) and on the prod version of the model:
- the model's bare loop (preprocessing + forward at batch 1 and MAX_BATCH, on all cores; the
  eager model and the graph the API serves) and the decode rate on one core (the API's own
  ``decode_image_b64``, base64 + PNG, and the tensor);
- the HTTP floor (bench/http_floor.py: a raw ASGI app, one uvicorn process per core, that reads
  the body and answers a fixed JSON); with the two above, the machine's limit
  (bench/predict_limit.py); and, for context, a lone-request loop (decode, idle, forward) and the
  Litestar floor (bench/framework_floor.py), with the limits they give;
- the tuned peer (bench/litserve_peer.py: LitServe, the same frozen graph, one worker per core,
  dynamic batching up to MAX_BATCH);
- the baseline (bench/baseline_server.py: one request, one decode, one forward on the event
  loop, no batching, as the original design served);
- ``python -m api`` with 1 and with N processes: /predict and v2 infer back to back at each
  concurrency (``--rounds R``: R interleaved rounds, each endpoint's median kept), and each
  process's PSS before and after its load.
Prints one table with ours ÷ the limit, ÷ LitServe and ÷ the baseline and the targets, met or
missed; writes JSON under reports/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from dataclasses import asdict
from pathlib import Path

import torch

from bench.common import (
    ensure_prod_model,
    machine,
    running_api,
    scrape_histogram,
    served_model,
)
from bench.loadtest import run_load, sample_images
from bench.predict_limit import decode_rate, machine_limit, model_loops, served_lone_loop
from bench.predict_report import print_report
from bench.predict_servers import (
    api_memory,
    memory_available,
    running_baseline,
    running_floor,
    running_framework_floor,
    running_litserve,
    v2_binary_available,
)
from bench.predict_targets import find, targets

OURS = "ours"
FLOOR, FRAMEWORK_FLOOR = "floor", "litestar floor"


async def measure(url: str, run: str, processes: int, endpoint: str, conc: int, args) -> dict:
    """One closed-loop load run, with the mean batch size our servers formed meanwhile."""
    ours = run == OURS
    before = await scrape_histogram(url, "batch_size", processes) if ours else None
    scale = args.floor_scale if run in (FLOOR, FRAMEWORK_FLOOR) else 1
    r = await run_load(
        url,
        args.model_name,
        concurrency=conc,
        total=args.requests * (1 if conc == 1 else 2) * scale,
        endpoint=endpoint,
        images=args.images,
        warmup=200,
    )
    row = {"run": run, "processes": processes, **asdict(r), "mean_batch_size": None}
    if run == "baseline":
        row["mean_batch_size"] = 1.0
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


async def theirs(args, artifact: Path, version: str, cores: int, s) -> list[dict]:
    """The floors, LitServe and the baseline, each at every concurrency (the floors also at 1)."""
    runs = []
    for run, running in ((FLOOR, running_floor), (FRAMEWORK_FLOOR, running_framework_floor)):
        async with running(cores) as url:
            for conc in sorted({1, *args.concurrency}):
                runs.append(await measure(url, run, cores, "predict", conc, args))
    if not args.no_litserve:
        graph, batch = s.serving.inference_graph, s.serving.max_batch
        async with running_litserve(artifact, cores, batch, graph, s.serving.device) as url:
            for conc in args.concurrency:
                runs.append(await measure(url, "litserve", cores, "predict", conc, args))
    async with running_baseline(artifact, version) as url:
        for conc in args.concurrency:
            runs.append(await measure(url, "baseline", 1, "predict", conc, args))
    return runs


def endpoints(args) -> tuple[str, ...]:
    """/predict, v2 infer with JSON tensors and, where bench/v2_binary.py is, binary tensors."""
    if args.no_v2:
        return ("predict",)
    return ("predict", "v2", "v2-binary") if v2_binary_available() else ("predict", "v2")


def median_round(rows: list[dict]) -> dict:
    """The round with the median req/s (the lower middle one of an even count), its own
    latencies with it, and every round's req/s."""
    ranked = sorted(rows, key=lambda r: r["qps"])
    return {**ranked[(len(ranked) - 1) // 2], "rounds_qps": [r["qps"] for r in rows]}


async def ours(args) -> tuple[list[dict], dict]:
    """Ours with 1 and N processes, every endpoint at each concurrency in ``args.rounds``
    interleaved rounds (the order reversed every other round), each endpoint's median round
    kept; PSS before and after."""
    runs: list[dict] = []
    memory: dict = {}
    with_memory = memory_available()
    names = endpoints(args)
    for workers in sorted({1, *args.workers}):
        async with running_api(workers) as url:
            if with_memory:
                before = await api_memory(url, workers)
            for conc in args.concurrency:
                rounds: dict[str, list[dict]] = {e: [] for e in names}
                for r in range(args.rounds):
                    for endpoint in names if r % 2 == 0 else names[::-1]:
                        row = await measure(url, OURS, workers, endpoint, conc, args)
                        rounds[endpoint].append(row)
                runs += [median_round(rounds[e]) for e in names]
            if with_memory:
                memory[f"x{workers}"] = {
                    "before": before,
                    "after": await api_memory(url, workers),
                }
    return runs, memory


async def main_async(args: argparse.Namespace) -> dict:
    """Every measurement, in one run; returns the report."""
    from ml.device import resolve_device
    from settings import get_settings

    s = get_settings()
    device = resolve_device(s.serving.device)
    cores = len(os.sched_getaffinity(0))
    # A fresh machine has no prod model: train one briefly rather than stop on a trace.
    await ensure_prod_model(args.model_name, args.arch or "mnist_cnn", args.train_limit)
    # The bare loop runs at the machine's limit (all cores); the servers use their settings.
    torch.set_num_threads(cores)
    version, model, meta, artifact = await served_model(args.model_name, str(device))
    args.images = sample_images(256)
    mode, max_batch = s.serving.inference_graph, s.serving.max_batch
    bare, served = model_loops(
        model, meta, artifact, args.images, device, mode, max_batch, args.bare_iters
    )
    for b in bare:
        print(
            f"bare loop {b['graph']} batch {b['batch']} x{b['processes']} process(es) "
            f"x{b['threads']} thread(s): {b['qps']:,.0f} img/s p50 {b['p50_ms']:.3f} ms",
            flush=True,
        )
    lone = served_lone_loop(served, meta, args.images[:64], device, bare, args.bare_iters)
    print(
        f"lone request loop: decode p50 {lone['decode_p50_ms']:.3f} ms, idle "
        f"{lone['gap_ms']:.2f} ms, forward p50 {lone['forward_p50_ms']:.3f} ms",
        flush=True,
    )
    del model, served
    if device.type == "cuda":
        torch.cuda.empty_cache()
    decode = decode_rate(args.images[:64])
    print(f"decode: {decode['per_core_per_s']:,.0f} requests/s on one core", flush=True)
    args.images = args.images[:64]
    runs = await theirs(args, artifact, version, cores, s)
    mine, memory = await ours(args)
    runs += mine
    hi = max(args.concurrency)
    floor, framework = (
        {**find(runs, run, hi), "c1_p50_ms": find(runs, run, 1)["p50_ms"]}
        for run in (FLOOR, FRAMEWORK_FLOOR)
    )
    limit = machine_limit(cores, floor, decode, bare, lone, framework)
    configured = s.api.workers
    default_workers = configured if configured in {1, *args.workers} else max(args.workers)
    report = {
        "model_name": args.model_name,
        "model_version": version,
        "architecture": meta.architecture,
        "machine": machine(str(device)),
        "settings": {
            "rounds": args.rounds,
            "DEVICE": s.serving.device,
            "INFERENCE_GRAPH": s.serving.inference_graph,
            "MAX_BATCH": s.serving.max_batch,
            "API_WORKERS_N": args.workers,
            "TORCH_THREADS": s.serving.torch_threads,
            "TORCH_BATCH_THREADS": s.serving.torch_batch_threads,
        },
        "bare_loop": bare,
        "decode": decode,
        "limit": limit,
        "http": runs,
        "memory": memory,
    }
    report["targets"] = targets(report, default_workers)
    return report


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
    p.add_argument(
        "--rounds", type=int, default=1, help="interleaved rounds of our endpoints (medians)"
    )
    p.add_argument("--no_v2", action="store_true", help="skip the v2 infer runs")
    p.add_argument("--no_litserve", action="store_true", help="skip the LitServe peer")
    p.add_argument(
        "--floor_scale", type=int, default=4, help="the HTTP floor's runs send this many x more"
    )
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    args.model_name = args.model_name or args.arch or "mnist_cnn"
    if min(args.workers) < 1 or min(args.requests, args.rounds) < 1 or min(args.concurrency) < 1:
        p.error("--workers, --requests, --rounds and --concurrency must be positive")
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
