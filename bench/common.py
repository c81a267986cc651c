"""Shared pieces of the benchmarks: machine description, the served model, a local API."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from cli.processes import ROOT, child_env, free_port, running_api  # noqa: F401 - shared with the CLI


def machine(device: str | None = None) -> dict:
    """What the numbers were measured on (CPU, cores, and the GPU when one is used)."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    from ml.device import describe, resolve_device

    info = {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if device is not None:
        info["device"] = describe(resolve_device(device))
    return info


async def scrape_histogram(url: str, name: str, processes: int = 1) -> tuple[float, float]:
    """(sum, count) of a Prometheus histogram across its label sets, summed over processes.

    Each API process keeps its own metrics; fresh connections reach each of them in turn
    (SO_REUSEPORT), told apart by the pid each response carries.
    """
    per_pid: dict[str, tuple[float, float]] = {}
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=5, limits=limits) as client:
        for _ in range(40 * processes):
            response = await client.get("/metrics")
            total = count = 0.0
            for line in response.text.splitlines():
                if line.startswith(f"{name}_sum"):
                    total += float(line.rsplit(" ", 1)[1])
                elif line.startswith(f"{name}_count"):
                    count += float(line.rsplit(" ", 1)[1])
            per_pid[response.headers.get("x-server-pid", "?")] = (total, count)
            if len(per_pid) >= processes:
                break
    return sum(v[0] for v in per_pid.values()), sum(v[1] for v in per_pid.values())


async def served_model(model_name: str, device: str = "cpu"):
    """(version, module on ``device``, metadata, artifact path) of the prod version, verified."""
    import msgspec

    import bootstrap
    from events.registry import ArtifactMetadata
    from ml.artifacts import load_model, sha256_file
    from ml.device import resolve_device

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
        module = load_model(path, meta).to(resolve_device(device)).eval()
        return version, module, meta, path
    finally:
        await p.aclose()


async def ensure_prod_model(model_name: str, arch: str, train_limit: int, epochs: int = 1) -> None:
    """Give ``model_name`` a prod version of ``arch`` if it has none (trained briefly, promoted).

    Throughput does not depend on accuracy, so a short run on the first ``train_limit``
    Fashion-MNIST training images will do; it goes through the CLI like any registration.
    """
    import bootstrap
    from domain.errors import NotFound

    p = await bootstrap.build_platform()
    try:
        try:
            if await p.queries.require_prod(model_name) is not None:
                return
        except NotFound:
            pass
    finally:
        await p.aclose()
    from ml.artifacts import save_artifact
    from ml.training import train
    from settings import get_settings

    s = get_settings()
    print(f"{model_name} has no prod version: training {arch} on {train_limit} images", flush=True)
    result = train(
        arch,
        "fashion_mnist_train",
        epochs=epochs,
        data_dir=s.files.data_dir,
        cache_dir=s.files.cache_dir,
        train_limit=train_limit,
        progress=False,
        device=s.serving.device,
    )
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        path = save_artifact(result.model, result.metadata, Path(tmp))
        env = child_env(ARTIFACT_IMPORT_ROOTS=tmp)
        for verb in (
            ["register", model_name, "v1.0.0", str(path)],
            ["promote", model_name, "v1.0.0"],
        ):
            # Blocking is fine here: set-up, before anything is measured.
            subprocess.run([sys.executable, "-m", "cli", *verb], cwd=ROOT, env=env, check=True)  # noqa: ASYNC221
