"""`just batch NAME DATASET [VERSION]`: submit a batch evaluation and follow it to the end."""

from __future__ import annotations

import argparse
import asyncio
from contextlib import asynccontextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.output import console, err_console, fail
from cli.processes import start_worker
from cli.registry_commands import Values, _publish, need, platform
from domain.jobs.aggregate import SUCCEEDED, TERMINAL
from domain.jobs.commands import SubmitBatchJob
from domain.registry.views import JobView
from events.base import EventMetadata


@asynccontextmanager
async def ensure_worker(p, quiet: bool = False):
    """Use running workers; with none, start one for the duration (and say so)."""
    if await p.ops.live_workers():
        yield None
        return
    if not quiet:
        console.print(
            "no worker is running; starting one for this job (`just worker` runs one for good)"
        )
    proc = start_worker()
    try:
        yield proc
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)


async def follow(p, job_id: str, label: str) -> JobView:
    """A progress bar until the job ends."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=None)
        while True:
            job = await p.job_queries.get(job_id)
            bar.update(
                task,
                total=job.progress.total,
                completed=job.progress.done,
                description=f"{label} [{job.status}]",
            )
            if job.status in TERMINAL:
                return job
            await asyncio.sleep(0.2)


def metrics_tables(job: JobView) -> list[Table]:
    """Summary, per-class and confusion-matrix tables of a finished job."""
    m = job.result_metrics or {}
    summary = Table(title=f"{job.model_name} {job.model_version} on {job.dataset_id}")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for key in (
        "accuracy",
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "sample_latency_p50_ms",
        "sample_latency_p95_ms",
        "sample_latency_p99_ms",
        "throughput_images_per_s",
        "wall_images_per_s",
        "images",
        "wall_seconds",
    ):
        if key in m and m[key] is not None:
            summary.add_row(key, f"{m[key]:,.4f}" if isinstance(m[key], float) else f"{m[key]:,}")
    per_class = Table(title="per class")
    for col in ("class", "precision", "recall", "f1", "support"):
        per_class.add_column(col, justify="right")
    for c in m.get("per_class", []):
        per_class.add_row(
            c["class"],
            f"{c['precision']:.4f}",
            f"{c['recall']:.4f}",
            f"{c['f1']:.4f}",
            str(c["support"]),
        )
    names = [c["class"] for c in m.get("per_class", [])]
    confusion = Table(title="confusion matrix (rows: true, columns: predicted)")
    confusion.add_column("")
    for i, _ in enumerate(names):
        confusion.add_column(str(i), justify="right")
    for i, row in enumerate(m.get("confusion_matrix", [])):
        label = f"{i} {names[i]}" if i < len(names) else str(i)
        confusion.add_row(
            label, *[f"[bold]{v}[/]" if j == i else str(v) for j, v in enumerate(row)]
        )
    return [summary, per_class, confusion]


async def run_job(
    p, meta: EventMetadata, name: str, dataset: str, version: str | None, batch_size: int
) -> JobView:
    """Submit, make sure a worker runs, follow to the end."""
    cmd = SubmitBatchJob(
        model_name=name,
        dataset_id=dataset,
        batch_size=batch_size,
        model_version=version,
        metadata=meta,
    )
    job = await p.bus.handle(cmd)
    await _publish(p)
    console.print(
        f"submitted job {job.job_id}: {name} {job.model_version} on {dataset} ({job.total:,} images)"
    )
    if job.warning:
        err_console.print(f"[yellow]warning:[/] {job.warning}", highlight=False, soft_wrap=True)
    async with ensure_worker(p):
        return await follow(p, job.job_id, f"{name} {job.model_version}")


async def batch_cmd(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """batch NAME DATASET [VERSION]."""
    (name,) = need(values, "model_name")
    dataset = args.dataset_id_opt or args.dataset_id
    if not dataset:
        return fail("usage: batch MODEL_NAME DATASET_ID [MODEL_VERSION]", 2)
    async with platform() as p:
        job = await run_job(p, meta, name, dataset, values.get("model_version"), args.batch_size)
    if job.status != SUCCEEDED:
        return fail(f"job {job.job_id} {job.status}: {job.error}")
    for table in metrics_tables(job):
        console.print(table)
    return 0
