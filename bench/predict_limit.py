"""The machine's limit for /predict: the model's bare loop, the decode rate, and the formula.

Each request costs at least the HTTP floor's core time (cores / floor req/s), one decode
(1 / decode per core) and its share of a full batch's forward (cores / model img/s at
MAX_BATCH, the bare loop on all cores), so no server on these cores can exceed

    limit = cores / (cores/floor + 1/decode + cores/model_at_max_batch)   req/s

and no lone request can be answered faster than the floor's p50 at c=1 + one decode + one
batch-1 forward (the bare loop's p50).

Those hot loops keep the weights and the decoder in the CPU's caches. A server at c=1 does not:
between two forwards it decodes the next request and waits for it. ``lone_request_loop`` runs
that sequence with nothing else (decode, an idle gap, one forward), so the report can say how
much of the distance to the latency limit any server on this machine would pay.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
import torch

from api.inference import decode_image_b64
from bench.load_requests import png_b64


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
        "processes": 1,
        "threads": torch.get_num_threads(),
        "batch": batch,
        "iterations": iters,
        "qps": round(batch * iters / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
    }


GAP_S = 1e-4  # a lone client's round trip outside the server: the floor's c=1 p50 is 0.08-0.17 ms


def lone_request_loop(
    run, meta, images: np.ndarray, iters: int, device=None, gap_s: float = GAP_S
) -> dict:
    """A c=1 server's work with nothing else around it: decode a request (the API's decode of a
    base64 PNG), sleep ``gap_s``, forward it alone; the p50 of each step on this thread."""
    from ml.preprocess import Normalizer

    normalize = Normalizer.of(meta)
    texts = [png_b64(img) for img in images]
    decodes, forwards = [], []
    with torch.inference_mode():
        for i in range(iters + 20):  # the first 20 warm up
            t = time.perf_counter()
            x = torch.from_numpy(decode_image_b64(texts[i % len(texts)])[None])
            decoded = time.perf_counter()
            time.sleep(gap_s)
            started = time.perf_counter()
            run(normalize(x.to(device or "cpu"))).cpu()
            if i >= 20:
                decodes.append(decoded - t)
                forwards.append(time.perf_counter() - started)
    return {
        "run": "lone request loop",
        "threads": torch.get_num_threads(),
        "gap_ms": gap_s * 1000,
        "iterations": iters,
        "decode_p50_ms": round(float(np.median(decodes)) * 1000, 3),
        "forward_p50_ms": round(float(np.median(forwards)) * 1000, 3),
    }


def served_lone_loop(run, meta, images, device, loops: list[dict], iters: int) -> dict:
    """``lone_request_loop`` on the served graph ``run`` (``model_loops``'), on the threads of
    its fastest batch-1 loop."""
    threads = torch.get_num_threads()
    torch.set_num_threads(_fastest_b1(loops)["threads"])
    try:
        return lone_request_loop(run, meta, images, iters, device)
    finally:
        torch.set_num_threads(threads)


def _fastest_b1(loops: list[dict]) -> dict:
    """The served graph's (the last loop's graph) batch-1 loop with the lowest p50."""
    graph = loops[-1]["graph"]
    return min(
        (b for b in loops if b["graph"] == graph and b["batch"] == 1), key=lambda b: b["p50_ms"]
    )


def _parallel_child(
    artifact: str, graph: str, batch: int, iters: int, images, barrier, out
) -> None:
    """One process of ``parallel_loop``: the served graph on one torch thread, after the barrier."""
    from ml.artifacts import load_model, read_metadata
    from ml.graph import serving_graph

    torch.set_num_threads(1)
    meta = read_metadata(Path(artifact))
    cpu = torch.device("cpu")
    served = serving_graph(load_model(Path(artifact), meta).eval(), graph, cpu, (1, batch))
    bare_loop(served.run, meta, images, batch, max(5, iters // 10), cpu, served.kind)  # warm
    barrier.wait()
    out.put(bare_loop(served.run, meta, images, batch, iters, cpu, served.kind))


def parallel_loop(artifact: Path, graph: str, images: np.ndarray, batch: int, iters: int) -> dict:
    """The CPU's model throughput as the API runs it: one process per core, one torch thread
    each (API_WORKERS = cores, TORCH_BATCH_THREADS 1), all looping at once; img/s summed."""
    ctx = mp.get_context("spawn")  # no fork of a process with OpenMP pools
    cores = len(os.sched_getaffinity(0))
    barrier, out = ctx.Barrier(cores), ctx.Queue()
    procs = [
        ctx.Process(
            target=_parallel_child, args=(str(artifact), graph, batch, iters, images, barrier, out)
        )
        for _ in range(cores)
    ]
    for proc in procs:
        proc.start()
    rows = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    return {
        **rows[0],
        "processes": cores,
        "threads": 1,
        "qps": round(sum(r["qps"] for r in rows), 1),
        "p50_ms": round(float(np.median([r["p50_ms"] for r in rows])), 3),
        "p99_ms": max(r["p99_ms"] for r in rows),
    }


def model_loops(model, meta, artifact: Path, images, device, mode: str, max_batch: int, iters: int):
    """The bare loops at batch 1 and ``max_batch``: the eager model and the served graph on all
    cores in this process, the served graph on one thread, and (CPU) one process per core; with
    the served graph's ``run``, for ``served_lone_loop``."""
    from ml.graph import serving_graph

    cores = torch.get_num_threads()
    served = serving_graph(model, mode, device, (1, max_batch))
    graphs = {"eager": model} | ({"frozen": served.run} if served.kind == "frozen" else {})
    sizes = ((1, iters), (max_batch, max(50, iters // 16)))
    rows = [
        bare_loop(run, meta, images, batch, n, device, kind)
        for kind, run in graphs.items()
        for batch, n in sizes
    ]
    if device.type == "cpu" and cores > 1:
        torch.set_num_threads(1)
        rows += [bare_loop(served.run, meta, images, b, n, device, served.kind) for b, n in sizes]
        torch.set_num_threads(cores)
        rows.append(parallel_loop(artifact, mode, images, max_batch, sizes[1][1]))
    return rows, served.run


def decode_rate(images: np.ndarray, seconds: float = 2.0) -> dict:
    """Requests decoded per second of one core's time: the API's ``decode_image_b64`` (base64 +
    PNG) and the uint8 tensor the batcher takes, on the load generator's own request images.

    Counted per CPU second of this thread (``thread_time``), so that other work on a shared
    machine does not pass for decode time; the wall-clock rate is recorded beside it.
    """
    texts = [png_b64(img) for img in images]

    def one(text: str) -> torch.Tensor:
        return torch.from_numpy(decode_image_b64(text)[None])

    for text in texts:  # warm: PIL's plugins, the allocator
        one(text)
    done, times = 0, []
    start, cpu_start = time.perf_counter(), time.thread_time()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        one(texts[done % len(texts)])
        times.append(time.perf_counter() - t)
        done += 1
    wall, cpu = time.perf_counter() - start, time.thread_time() - cpu_start
    return {
        "per_core_per_s": round(done / cpu, 1),
        "wall_per_s": round(done / wall, 1),
        "cpu_us": round(cpu / done * 1e6, 2),
        "p50_us": round(float(np.percentile(np.array(times) * 1e6, 50)), 2),
        "requests": done,
        "function": "api.inference.decode_image_b64 + torch.from_numpy",
    }


def machine_limit(
    cores: int,
    floor: dict,
    decode: dict,
    loops: list[dict],
    lone: dict | None = None,
    framework: dict | None = None,
) -> dict:
    """The limit in req/s and the c=1 latency limit in ms, with each term's µs of core time.

    The model's term takes the served graph's best machine-wide img/s at the largest batch
    (all cores in one process, or one process per core); the c=1 term its fastest batch-1 p50.
    With ``lone`` (``lone_request_loop``), also the c=1 latency with a request's own gaps: the
    floor's p50 + that loop's decode and forward (context for the limit, not a target). With
    ``framework`` (bench/framework_floor.py: the floor with Litestar), the same two limits with
    it in the floor's place: what a Litestar app could reach on this machine.
    """
    graph = loops[-1]["graph"]
    served = [b for b in loops if b["graph"] == graph]
    largest = max(b["batch"] for b in served)
    machine_wide = [
        b for b in served if b["batch"] == largest and b["threads"] * b["processes"] == cores
    ]
    model_max = max(machine_wide or served, key=lambda b: b["qps"])
    model_b1 = _fastest_b1(loops)
    floor_us = cores / floor["qps"] * 1e6
    decode_us = 1e6 / decode["per_core_per_s"]
    model_us = cores / model_max["qps"] * 1e6
    per_request_us = floor_us + decode_us + model_us
    c1_ms = floor["c1_p50_ms"] + decode["p50_us"] / 1000 + model_b1["p50_ms"]
    context = {}
    if lone is not None:
        context = {
            "c1_with_gaps_ms": round(
                floor["c1_p50_ms"] + lone["decode_p50_ms"] + lone["forward_p50_ms"], 3
            ),
            "lone_request_loop": lone,
        }
    if framework is not None:
        framework_us = cores / framework["qps"] * 1e6
        context["on_framework"] = {
            "req_per_s": round(cores / (framework_us + decode_us + model_us) * 1e6, 1),
            "framework_floor_us": round(framework_us, 1),
            "c1_latency_ms": round(c1_ms - floor["c1_p50_ms"] + framework["c1_p50_ms"], 3),
            "framework_req_per_s": framework["qps"],
            "framework_c1_p50_ms": framework["c1_p50_ms"],
        }
    return {
        **context,
        "req_per_s": round(cores / per_request_us * 1e6, 1),
        "core_us_per_request": {
            "http_floor": round(floor_us, 1),
            "decode": round(decode_us, 1),
            "model": round(model_us, 1),
            "total": round(per_request_us, 1),
        },
        "c1_latency_ms": round(c1_ms, 3),
        "c1_terms_ms": {
            "floor_p50": floor["c1_p50_ms"],
            "decode_p50": round(decode["p50_us"] / 1000, 3),
            "forward_b1_p50": model_b1["p50_ms"],
        },
        "inputs": {
            "cores": cores,
            "floor_req_per_s": floor["qps"],
            "floor_concurrency": floor["concurrency"],
            "decode_per_core_per_s": decode["per_core_per_s"],
            "model_img_per_s": model_max["qps"],
            "model_batch": model_max["batch"],
            "model_graph": model_max["graph"],
            "model_processes": model_max["processes"],
            "model_threads": model_max["threads"],
            "forward_b1_threads": model_b1["threads"],
        },
    }
