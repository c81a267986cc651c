"""Where one /predict request's time goes, at concurrency 1 and 32: py-spy samples, classified.

    python -m bench.profile_predict [--model_name mnist_cnn] [--seconds 6]

Starts ``python -m api`` (one process), loads it at each concurrency with the bench client,
and samples the server with py-spy (outside the process, so the GIL does not bias it) from
every thread. Each sample is charged to the innermost frame that belongs to a stage: HTTP
(uvicorn's parser and writes), JSON, base64, PNG decode, the batcher (queue and hand-off to
the inference thread), forward, response, metrics, the framework (Litestar routing,
signature parsing, DI) and the handler itself. Time on the event loop and time in the
inference thread are reported separately, in µs per request; queueing (waiting, not CPU) is
the server's queue_wait_seconds. Writes reports/profile_predict.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import httpx

from bench.common import machine, running_api, scrape_histogram
from bench.loadtest import run_load, sample_images

# (stage, substrings of "function (file" in a frame); checked for each frame from the leaf up.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("PNG decode", ("decode_png_image", "_to_luma", "PIL/")),
    ("base64", ("decode_image_b64",)),
    ("JSON", ("msgspec_hooks.py", "decode_json", "encode_json", "msgspec/")),
    ("metrics", ("api/middleware.py", "opentelemetry/")),
    ("batcher", ("ml/batcher.py", "ml/inference.py")),
    ("forward", ("ml/loaded_model.py", "ml/device.py", "ml/preprocess.py", "torch/")),
    ("response", ("litestar/response/", "to_asgi_response", "ASGIResponse")),
    ("handler", ("api/inference.py",)),
    ("HTTP", ("httptools_impl.py", "h11_impl.py", "uvicorn/")),
    ("framework", ("litestar/",)),
    ("event loop", ("asyncio/", "uvloop/", "concurrent/futures/", "threading.py")),
]


_LINE_NO = re.compile(r":\d+\)$")


def _py_spy() -> str | None:
    """py-spy on PATH or beside this interpreter."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def classify(stack: list[str]) -> tuple[str, str]:
    """(stage, frame) of the innermost frame that belongs to a stage."""
    for frame in reversed(stack):
        for stage, needles in STAGES:
            if any(n in frame for n in needles):
                return stage, frame
    return "other", stack[-1] if stack else "?"


def parse_raw(path: Path) -> tuple[dict[str, Counter], Counter]:
    """py-spy's raw output → ({thread kind: Counter(stage → samples)}, Counter(frame → samples))."""
    out: dict[str, Counter] = {"event loop thread": Counter(), "inference thread": Counter()}
    frames_seen: Counter = Counter()
    for line in path.read_text().splitlines():
        stack_text, _, count = line.rpartition(" ")
        frames = [_LINE_NO.sub(")", f) for f in stack_text.split(";")]
        kind = "inference thread" if "inference" in frames[0] else "event loop thread"
        stage, frame = classify(frames[1:])
        out[kind][stage] += int(count)
        frames_seen[f"{kind[:4]}: {stage}: {frame}"] += int(count)
    return out, frames_seen


async def profile_at(url: str, pid: str, model: str, conc: int, seconds: float) -> dict:
    """Load at ``conc`` while py-spy records ``seconds``; µs per request by stage and thread."""
    images = sample_images(64)
    await run_load(url, model, concurrency=conc, total=300, images=images, warmup=100)
    wait0 = await scrape_histogram(url, "queue_wait_seconds")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.txt"
        rate = 1000
        cmd = [
            _py_spy(),
            "record",
            "-p",
            pid,
            "-d",
            str(int(seconds)),
            "-r",
            str(rate),
            "-f",
            "raw",
            "-o",
            str(raw),
            "--threads",
            "--nonblocking",
        ]
        spy = await asyncio.create_subprocess_exec(
            *cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Enough requests to outlast the recording; the count is the rate times its length.
        load = asyncio.create_task(
            run_load(url, model, concurrency=conc, total=10**7, images=images, warmup=0)
        )
        await spy.wait()
        load.cancel()
        stages, frames = parse_raw(raw)
    r = await run_load(url, model, concurrency=conc, total=2000, images=images, warmup=0)
    wait1 = await scrape_histogram(url, "queue_wait_seconds")
    requests = r.qps * seconds
    per_request = {
        kind: {s: round(n / rate / requests * 1e6, 1) for s, n in c.most_common()}
        for kind, c in stages.items()
    }
    waits = wait1[1] - wait0[1]
    return {
        "concurrency": conc,
        "req_per_s": r.qps,
        "p50_ms": r.p50_ms,
        "wall_us_per_request": round(1e6 / r.qps, 1) if conc == 1 else None,
        "loop_cpu_us_per_request": round(sum(per_request["event loop thread"].values()), 1),
        "queue_wait_us_mean": round((wait1[0] - wait0[0]) / waits * 1e6, 1) if waits else None,
        "us_per_request": per_request,
        "top_frames_us_per_request": {
            f: round(n / rate / requests * 1e6, 1) for f, n in frames.most_common(25)
        },
    }


async def main_async(args: argparse.Namespace) -> dict:
    """Profile at each concurrency against one API process."""
    results = []
    async with running_api(1) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            pid = (await client.get("/health")).headers["x-server-pid"]
        for conc in args.concurrency:
            results.append(await profile_at(url, pid, args.model_name, conc, args.seconds))
            print(json.dumps(results[-1], indent=1), flush=True)
    return {"model_name": args.model_name, "machine": machine(), "profiles": results}


def print_stages(report: dict) -> None:
    """µs per request by stage: one column per concurrency, each thread's stages in turn."""
    from rich.console import Console
    from rich.table import Table

    profiles = report["profiles"]
    table = Table(title=f"profile-predict: {report['model_name']}, µs per request by stage")
    table.add_column("thread: stage")
    for p in profiles:
        table.add_column(f"c={p['concurrency']}", justify="right")
    table.add_row("req/s", *(f"{p['req_per_s']:,.0f}" for p in profiles))
    table.add_row("p50 ms", *(f"{p['p50_ms']:.2f}" for p in profiles))
    table.add_row("queue wait (mean µs)", *(str(p["queue_wait_us_mean"]) for p in profiles))
    for kind in ("event loop thread", "inference thread"):
        totals = [sum(p["us_per_request"][kind].values()) for p in profiles]
        table.add_row(f"{kind}: total", *(f"{t:,.0f}" for t in totals))
        stages = sorted(
            {s for p in profiles for s in p["us_per_request"][kind]},
            key=lambda s: -sum(p["us_per_request"][kind].get(s, 0) for p in profiles),
        )
        for stage in stages:
            cells = [p["us_per_request"][kind].get(stage) for p in profiles]
            table.add_row(f"  {stage}", *("" if c is None else f"{c:,.0f}" for c in cells))
    Console(width=None if sys.stdout.isatty() else 120).print(table)


def main() -> int:
    """Entry point."""
    p = argparse.ArgumentParser(prog="python -m bench.profile_predict")
    p.add_argument("--model_name", default="mnist_cnn")
    p.add_argument("--seconds", type=int, default=6)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    p.add_argument("--out", type=Path, default=Path("reports/profile_predict.json"))
    args = p.parse_args()
    if _py_spy() is None:
        print("error: py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return 2
    report = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print_stages(report)
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
