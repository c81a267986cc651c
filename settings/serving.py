"""The HTTP API and the models it serves."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ml.cores import available_cores
from settings.parse import choice, flag, number, read_int, setting, whole


def _api_workers() -> int:
    cores = available_cores()
    return read_int("API_WORKERS", max(min(2, cores), cores // 2))


@dataclass(frozen=True)
class ApiSettings:
    """Where the HTTP API listens, its processes and its limits."""

    host: str = setting(
        "HOST",
        lambda: os.environ.get("HOST", "127.0.0.1"),
        "`127.0.0.1`",
        "Where `just serve` listens (and a worker serves `/metrics`); without an API key only "
        "a loopback address ([security](docs/security.md)).",
    )
    port: int = whole("PORT", 8000, "Where `just serve` listens.")
    workers: int = setting(
        "API_WORKERS",
        _api_workers,
        "one per two cores; 2 on 2-3",
        "API processes on one port (`SO_REUSEPORT`), each with its own batcher and model cache.",
    )
    max_body_bytes: int = whole(
        "MAX_BODY_BYTES", 8 << 20, "Request bodies larger than this get 413.", "8 MiB"
    )
    default_page_size: int = whole(
        "DEFAULT_PAGE_SIZE", 100, "Items per page of a list endpoint without `?limit=`."
    )
    max_page_size: int = whole("MAX_PAGE_SIZE", 1000, "A larger `?limit=` is clamped to this.")


@dataclass(frozen=True)
class ServingSettings:
    """Inference: device, threads, the dynamic batcher, the model cache ([serving](docs/serving.md))."""

    device: str = setting(
        "DEVICE",
        lambda: os.environ.get("DEVICE") or "auto",
        "`auto`",
        "Where models run (serving, workers, training): `auto` (the first CUDA GPU, else the CPU), "
        "`cpu`, `cuda`, `cuda:N`.",
    )
    inference_graph: str = choice(
        "INFERENCE_GRAPH",
        "auto",
        ("auto", "frozen", "eager"),
        "What runs the forwards of the API and of batch workers: `frozen` (traced, weights "
        "folded), `eager` (as trained) or "
        "`auto` (CPU: batches frozen, lone images on the faster of the two; GPU: eager).",
    )
    torch_threads: int = setting(
        "TORCH_THREADS",
        lambda: read_int("TORCH_THREADS", available_cores()),
        "cores",
        "Torch threads for inference and training (with `API_WORKERS` > 1: each process's share).",
    )
    torch_batch_threads: int = setting(
        "TORCH_BATCH_THREADS",
        lambda: read_int("TORCH_BATCH_THREADS", max(1, available_cores() - 1)),
        "cores - 1",
        "Torch threads for a coalesced batch in the API, leaving a core to the event loop.",
    )
    torch_idle_threads: int = setting(
        "TORCH_IDLE_THREADS",
        lambda: read_int("TORCH_IDLE_THREADS", read_int("TORCH_THREADS", available_cores())),
        "`TORCH_THREADS`",
        "Torch threads for a lone request while no other API process has a request in progress.",
    )
    max_batch: int = whole("MAX_BATCH", 32, "The largest batch the dynamic batcher forms.")
    max_queue_delay_ms: float = number(
        "MAX_QUEUE_DELAY_MS", 0.0, "How long a partial batch waits for more requests (0: never)."
    )
    max_queue: int = whole(
        "MAX_QUEUE", 1024, "Images queued per model before requests get 503 + Retry-After."
    )
    model_cache_size: int = whole(
        "MODEL_CACHE_SIZE",
        8,
        "Model versions kept loaded per process (least recently used go first).",
    )
    warm_up: bool = flag(
        "WARM_UP", True, "Load the prod versions (up to `MODEL_CACHE_SIZE`) when the API starts."
    )
    hot_swap: bool = flag(
        "HOT_SWAP", True, "Follow `registry.events` to switch prod without a restart."
    )
