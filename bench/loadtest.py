"""Load-test /predict (or v2 infer): closed loop by concurrency, or open loop at a fixed rate.

    python -m bench.loadtest --url http://127.0.0.1:8000 --concurrency 10 --total 200 --model_name mnist_cnn

Open loop (``--rate R``) schedules request i at t0 + i/R and measures latency from that
scheduled time, so a slow server cannot hide queueing delay (coordinated omission).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.client import Connection, HttpError, build_request


@dataclass
class LoadResult:
    """What one load run measured."""

    endpoint: str
    mode: str
    concurrency: int
    total: int
    ok: int
    errors: int
    duration_s: float
    qps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    target_rate: float | None = None
    status_counts: dict[str, int] = field(default_factory=dict)


def sample_images(count: int = 64) -> np.ndarray:
    """Real fashion_mnist test images when installed, else the 5k MNIST digits, else zeros."""
    try:
        from ml.datasets import load_dataset
        from settings import get_settings

        s = get_settings()
        for dataset in (f"fashion_mnist_{count}", f"mnist_{count}"):
            try:
                return load_dataset(
                    dataset, data_dir=s.data_dir, cache_dir=s.cache_dir
                ).images.numpy()
            except ValueError:
                continue
    except ImportError:
        pass
    return np.zeros((count, 28, 28), dtype=np.uint8)


def png_b64(image: np.ndarray) -> str:
    """A uint8 28x28 array as base64 PNG text."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def build_requests(url: str, endpoint: str, model_name: str, images: np.ndarray) -> list[bytes]:
    """Pre-built requests, one per sample image."""
    out = []
    for img in images:
        if endpoint == "predict":
            body = {"model_name": model_name, "image_b64": png_b64(img)}
            path = "/predict"
        else:
            body = {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [1, 784],
                        "datatype": "UINT8",
                        "data": img.reshape(-1).tolist(),
                    }
                ]
            }
            path = f"/v2/models/{model_name}/infer"
        out.append(build_request(url, path, json.dumps(body, separators=(",", ":")).encode()))
    return out


def summarize(
    latencies: list[float],
    statuses: list[int],
    duration: float,
    *,
    endpoint: str,
    mode: str,
    concurrency: int,
    rate: float | None,
) -> LoadResult:
    """Percentiles over successful requests; every non-200 counts as an error."""
    ok_lat = np.array([lat for lat, s in zip(latencies, statuses, strict=True) if s == 200]) * 1000
    counts: dict[str, int] = {}
    for s in statuses:
        counts[str(s)] = counts.get(str(s), 0) + 1
    pct = (lambda q: float(np.percentile(ok_lat, q))) if len(ok_lat) else (lambda q: float("nan"))
    ok = len(ok_lat)
    return LoadResult(
        endpoint=endpoint,
        mode=mode,
        concurrency=concurrency,
        total=len(statuses),
        ok=ok,
        errors=len(statuses) - ok,
        duration_s=round(duration, 3),
        qps=round(ok / duration, 1) if duration else 0.0,
        p50_ms=round(pct(50), 3),
        p95_ms=round(pct(95), 3),
        p99_ms=round(pct(99), 3),
        mean_ms=round(float(ok_lat.mean()), 3) if ok else float("nan"),
        max_ms=round(float(ok_lat.max()), 3) if ok else float("nan"),
        target_rate=rate,
        status_counts=counts,
    )


async def closed_loop(
    url: str, requests: list[bytes], concurrency: int, total: int
) -> tuple[list, list, float]:
    """``concurrency`` connections, each sending its next request when the last one answers."""
    latencies: list[float] = []
    statuses: list[int] = []
    counter = iter(range(total))

    async def worker() -> None:
        conn = Connection(url)
        try:
            for i in counter:
                start = time.perf_counter()
                try:
                    status, _ = await conn.send(requests[i % len(requests)])
                except (OSError, HttpError, asyncio.IncompleteReadError):
                    status = 599
                latencies.append(time.perf_counter() - start)
                statuses.append(status)
        finally:
            await conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - start


async def open_loop(
    url: str, requests: list[bytes], rate: float, total: int, max_conns: int
) -> tuple[list, list, float]:
    """Send at a fixed arrival rate; latency counts from each request's scheduled time."""
    latencies: list[float] = []
    statuses: list[int] = []
    idle: list[Connection] = []
    inflight = asyncio.Semaphore(max_conns)
    t0 = time.perf_counter()

    async def one(i: int, scheduled: float) -> None:
        async with inflight:
            conn = idle.pop() if idle else Connection(url)
            try:
                status, _ = await conn.send(requests[i % len(requests)])
                idle.append(conn)
            except (OSError, HttpError, asyncio.IncompleteReadError):
                status = 599
                await conn.close()
            latencies.append(time.perf_counter() - scheduled)
            statuses.append(status)

    tasks = []
    for i in range(total):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    for conn in idle:
        await conn.close()
    return latencies, statuses, time.perf_counter() - t0


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


def save_report(
    results: list[LoadResult], directory: Path, name: str | None = None, extra: dict | None = None
) -> Path:
    """Write the JSON report (``loadtest_<timestamp>.json`` unless named)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / (name or f"loadtest_{stamp}.json")
    payload = {"created_at": stamp, "results": [asdict(r) for r in results], **(extra or {})}
    path.write_text(json.dumps(payload, indent=2))
    return path


def print_table(results: list[LoadResult], title: str) -> None:
    """A rich table of results."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in (
        "endpoint",
        "mode",
        "conc.",
        "requests",
        "QPS",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
    ):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r.endpoint,
            r.mode if not r.target_rate else f"open@{r.target_rate:g}/s",
            str(r.concurrency),
            str(r.total),
            f"{r.qps:,.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p95_ms:.2f}",
            f"{r.p99_ms:.2f}",
            str(r.errors),
        )
    Console(width=None if sys.stdout.isatty() else 120).print(table)


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
