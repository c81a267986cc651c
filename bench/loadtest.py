"""Load-test /predict (or v2 infer): closed loop by concurrency, or open loop at a fixed rate.

    python -m bench.loadtest --url http://127.0.0.1:8000 --concurrency 10 --total 200 --model_name mnist_cnn

Open loop (``--rate R``) schedules request i at t0 + i/R and measures latency from that
scheduled time, so a slow server cannot hide queueing delay (coordinated omission).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import numpy as np

from bench.client import HttpError
from bench.load_loops import closed_loop, open_loop
from bench.load_report import LoadResult, print_table, save_report, summarize
from bench.load_requests import build_requests, sample_images

# bench_predict and profile_predict import run_load and sample_images from here.
__all__ = ["LoadResult", "main", "run_load", "sample_images"]


async def run_load(
    url: str,
    model_name: str,
    *,
    concurrency: int,
    total: int,
    endpoint: str = "predict",
    rate: float | None = None,
    images: np.ndarray | None = None,
    warmup: int = 50,
) -> LoadResult:
    """Warm up, then run one closed- or open-loop measurement."""
    images = sample_images() if images is None else images
    requests = build_requests(url, endpoint, model_name, images)
    if warmup:
        await closed_loop(url, requests, min(concurrency, 8), warmup)
    if rate:
        lat, st, dur = await open_loop(url, requests, rate, total, max(concurrency, 64))
        mode = "open"
    else:
        lat, st, dur = await closed_loop(url, requests, concurrency, total)
        mode = "closed"
    return summarize(lat, st, dur, endpoint=endpoint, mode=mode, concurrency=concurrency, rate=rate)


def main(argv: list[str] | None = None) -> int:
    """CLI entry: the original flags, plus --rate, --endpoint and --report_dir."""
    p = argparse.ArgumentParser(
        prog="python -m bench.loadtest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--total", type=int, default=200)
    p.add_argument("--model_name", "--model-name", default="mnist_cnn")
    p.add_argument("--rate", type=float, default=None, help="open loop: requests per second")
    p.add_argument("--endpoint", choices=("predict", "v2"), default="predict")
    p.add_argument("--report_dir", type=Path, default=Path("reports"))
    p.add_argument("--warmup", type=int, default=50)
    args = p.parse_args(argv)
    if args.concurrency < 1 or args.total < 1 or (args.rate is not None and args.rate <= 0):
        p.error("--concurrency, --total and --rate must be positive")
    try:
        result = asyncio.run(
            run_load(
                args.url,
                args.model_name,
                concurrency=args.concurrency,
                total=args.total,
                endpoint=args.endpoint,
                rate=args.rate,
                warmup=args.warmup,
            )
        )
    except (OSError, HttpError) as exc:
        print(f"error: cannot load-test {args.url}: {exc}")
        return 1
    print_table([result], f"load test: {args.url} {args.model_name}")
    path = save_report(
        [result], args.report_dir, extra={"url": args.url, "model_name": args.model_name}
    )
    print(f"report: {path}")
    return 0 if result.errors == 0 else 2


if __name__ == "__main__":
    raise SystemExit(main())
