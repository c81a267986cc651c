"""Settings, read once from the environment. Every field documents its variable."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path


class SettingsError(ValueError):
    """A variable of the environment that cannot be read; the message names it."""


def _path(name: str, default: str) -> Path:
    return Path(os.environ.get(name) or default).expanduser().resolve()


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    try:
        return int(raw) if raw else default
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from None


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = os.environ.get(name) or default
    if raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    return default if raw is None or raw == "" else raw.lower() in {"1", "true", "yes", "on"}


def available_cores() -> int:
    """CPUs this process may run on: sched_getaffinity honours pinning (containers), where
    cpu_count may report the host's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


ROLES = ("reader", "predictor", "operator", "admin")  # lowest first, as in events/keys.py


def _api_keys(raw: str) -> dict[str, tuple[str, str]]:
    """Parse ``name:key:role,...`` into key -> (name, role); ``name:key`` means role operator."""
    keys: dict[str, tuple[str, str]] = {}
    for item in filter(None, (s.strip() for s in raw.split(","))):
        parts = item.split(":")
        if len(parts) == 2:
            parts.append("operator")  # the old format: a key could do every write there was
        name, key, role = parts if len(parts) == 3 else ("", "", "")
        if not name or len(key) < 16 or role not in ROLES:
            raise SettingsError(
                "API_KEYS must look like 'alice:<key of 16+ chars>:admin,bob:<key>:reader' "
                f"(roles: {', '.join(ROLES)}; no ':' or ',' inside a key)"
            )
        keys[key] = (name, role)
    return keys


@dataclass(frozen=True)
class Settings:
    """Platform settings."""

    # DATABASE_URL: PostgreSQL URL; unset means an embedded server under STATE_DIR.
    database_url: str | None = field(default_factory=lambda: os.environ.get("DATABASE_URL") or None)
    # MIGRATION_DATABASE_URL: the schema owner's URL, used only to migrate; DATABASE_URL is then
    # the application's role, granted INSERT and SELECT on event_log and nothing more there.
    migration_database_url: str | None = field(
        default_factory=lambda: os.environ.get("MIGRATION_DATABASE_URL") or None
    )
    # AUDIT_HMAC_KEY: when set, each event_log row's hash is an HMAC under this key, so rewriting
    # the chain needs a secret the database never holds (docs/audit.md).
    audit_hmac_key: bytes | None = field(
        default_factory=lambda: os.environ.get("AUDIT_HMAC_KEY", "").encode() or None,
        repr=False,
    )
    # REDIS_URL: Redis URL; unset means an embedded server under STATE_DIR.
    redis_url: str | None = field(default_factory=lambda: os.environ.get("REDIS_URL") or None)
    # STATE_DIR: where embedded servers and caches live.
    state_dir: Path = field(default_factory=lambda: _path("STATE_DIR", ".platform"))
    # ARTIFACTS_DIR: the artifact store root: <root>/<model>/<version>/model.pt.
    artifacts_dir: Path = field(default_factory=lambda: _path("ARTIFACTS_DIR", "artifacts"))
    # ARTIFACT_IMPORT_ROOTS: colon-separated folders registration may copy from (default: cwd).
    artifact_import_roots: tuple[Path, ...] = field(
        default_factory=lambda: tuple(
            Path(p).expanduser().resolve()
            for p in (os.environ.get("ARTIFACT_IMPORT_ROOTS") or os.getcwd()).split(":")
            if p
        )
    )
    # MAX_ARTIFACT_BYTES: largest artifact accepted at registration.
    max_artifact_bytes: int = field(default_factory=lambda: _int("MAX_ARTIFACT_BYTES", 512 << 20))
    # DATA_DIR: optional folder of IDX dataset files, tried first.
    data_dir: Path | None = field(
        default_factory=lambda: _path("DATA_DIR", "") if os.environ.get("DATA_DIR") else None
    )
    # ALLOW_DOWNLOAD: let torchvision download datasets when they are not installed.
    allow_download: bool = field(default_factory=lambda: _bool("ALLOW_DOWNLOAD", False))
    # HOST / PORT: where `serve` listens.
    host: str = field(default_factory=lambda: os.environ.get("HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: _int("PORT", 8000))
    # API_KEYS: bootstrap keys 'name:key:role,...' beside those created with `just create-key`;
    # the name is the actor of every event the key causes (README: Security model).
    api_keys: dict[str, tuple[str, str]] = field(
        default_factory=lambda: _api_keys(os.environ.get("API_KEYS", "")), repr=False
    )
    # OPEN_READS: let requests without a key use the endpoints that need only the reader role.
    open_reads: bool = field(default_factory=lambda: _bool("OPEN_READS", False))
    # ALLOW_ANONYMOUS: with no key defined, serve anonymous requests on a non-loopback address.
    allow_anonymous: bool = field(default_factory=lambda: _bool("ALLOW_ANONYMOUS", False))
    # KEY_CACHE_TTL_S: how long a process reuses a key lookup: a revoked key works at most this
    # long in another process (the revoking process forgets it at once).
    key_cache_ttl_s: float = field(default_factory=lambda: _float("KEY_CACHE_TTL_S", 5.0))
    # RATE_LIMIT_PER_S / RATE_LIMIT_BURST: each key's (or anonymous client address's) token bucket
    # in each API process; above it 429 with Retry-After. 0 turns the limit off.
    rate_limit_per_s: float = field(default_factory=lambda: _float("RATE_LIMIT_PER_S", 200.0))
    rate_limit_burst: int = field(default_factory=lambda: _int("RATE_LIMIT_BURST", 400))
    # DEFAULT_PAGE_SIZE / MAX_PAGE_SIZE: items per page of a list endpoint without / with ?limit=.
    default_page_size: int = field(default_factory=lambda: _int("DEFAULT_PAGE_SIZE", 100))
    max_page_size: int = field(default_factory=lambda: _int("MAX_PAGE_SIZE", 1000))
    # MAX_BODY_BYTES: request bodies over this get 413.
    max_body_bytes: int = field(default_factory=lambda: _int("MAX_BODY_BYTES", 8 << 20))
    # DB_POOL_SIZE: pooled PostgreSQL connections per process (as many again on overflow).
    db_pool_size: int = field(default_factory=lambda: _int("DB_POOL_SIZE", 10))
    # DB_POOL_TIMEOUT_S: how long a request waits for a pooled connection before a 503.
    db_pool_timeout_s: float = field(default_factory=lambda: _float("DB_POOL_TIMEOUT_S", 10.0))
    # DB_STATEMENT_TIMEOUT_MS / DB_LOCK_TIMEOUT_MS / DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: the server
    # ends a statement, a lock wait, and a session idle inside a transaction past these (503).
    db_statement_timeout_ms: int = field(
        default_factory=lambda: _int("DB_STATEMENT_TIMEOUT_MS", 60_000)
    )
    db_lock_timeout_ms: int = field(default_factory=lambda: _int("DB_LOCK_TIMEOUT_MS", 10_000))
    db_idle_in_transaction_timeout_ms: int = field(
        default_factory=lambda: _int("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", 60_000)
    )
    # DB_KEEPALIVE_S: TCP keepalive idle time, so the server drops a client that vanished.
    db_keepalive_s: int = field(default_factory=lambda: _int("DB_KEEPALIVE_S", 30))
    # REGISTRATION_CONCURRENCY: registrations a process runs at once (each holds a lock
    # connection and a transaction's); the others wait their turn (default: half the pool).
    registration_concurrency: int = field(
        default_factory=lambda: _int(
            "REGISTRATION_CONCURRENCY", max(1, _int("DB_POOL_SIZE", 10) // 2)
        )
    )
    # REGISTRATION_WAIT_S: how long a registration waits for its turn, or for another one of
    # the same version to finish, before a 503.
    registration_wait_s: float = field(default_factory=lambda: _float("REGISTRATION_WAIT_S", 30.0))
    # RELAY_INTERVAL_S: the longest the relay waits between passes. It passes as soon as an
    # append commits (LISTEN/NOTIFY); this pass only notices a Redis that lost its data.
    relay_interval_s: float = field(default_factory=lambda: _float("RELAY_INTERVAL_S", 1.0))
    # LOG_LEVEL: structlog level.
    log_level: str = field(default_factory=lambda: os.environ.get("LOG_LEVEL", "info"))
    # TORCH_THREADS: intra-op threads for inference and training (default: all cores).
    torch_threads: int = field(default_factory=lambda: _int("TORCH_THREADS", available_cores()))
    # TORCH_BATCH_THREADS: threads for coalesced batches in the API, leaving a core to the event
    # loop while requests arrive concurrently (default: cores - 1, at least 1).
    torch_batch_threads: int = field(
        default_factory=lambda: _int("TORCH_BATCH_THREADS", max(1, available_cores() - 1))
    )
    # TORCH_IDLE_THREADS: threads for a lone request while no other API process has one
    # (default: TORCH_THREADS; `python -m api` with several processes passes the machine's).
    torch_idle_threads: int = field(
        default_factory=lambda: _int("TORCH_IDLE_THREADS", _int("TORCH_THREADS", available_cores()))
    )
    # API_WORKERS: API processes sharing one port, each with its own batcher and model cache
    # (default: one per two cores, but two on 2-3 cores and one on a single core; measured in
    # the README's serving section).
    api_workers: int = field(
        default_factory=lambda: _int(
            "API_WORKERS", max(min(2, available_cores()), available_cores() // 2)
        )
    )
    # DEVICE: where models run: auto (the first CUDA GPU if there is one, else cpu), cpu, cuda[:N].
    device: str = field(default_factory=lambda: os.environ.get("DEVICE") or "auto")
    # INFERENCE_GRAPH: what runs the API's forwards: frozen (traced, weights folded, oneDNN
    # fusions: 1.3-2.2x mnist_cnn on a CPU), eager (the model as trained), or auto (on the CPU
    # batches frozen, lone images on whichever of the two this server measures faster
    # (ml.graph); eager on a GPU). A frozen graph serves only if it matches the model at load.
    inference_graph: str = field(
        default_factory=lambda: _choice("INFERENCE_GRAPH", "auto", ("auto", "frozen", "eager"))
    )

    # MAX_BATCH: the largest batch the dynamic batcher forms.
    max_batch: int = field(default_factory=lambda: _int("MAX_BATCH", 32))
    # MAX_QUEUE_DELAY_MS: how long a partial batch waits for more requests (0: never waits).
    max_queue_delay_ms: float = field(default_factory=lambda: _float("MAX_QUEUE_DELAY_MS", 0.0))
    # MAX_QUEUE: images queued per model before requests get 503 + Retry-After.
    max_queue: int = field(default_factory=lambda: _int("MAX_QUEUE", 1024))
    # MODEL_CACHE_SIZE: model versions kept loaded (least recently used are unloaded).
    model_cache_size: int = field(default_factory=lambda: _int("MODEL_CACHE_SIZE", 8))
    # WARM_UP: load prod versions (up to MODEL_CACHE_SIZE) when the API starts.
    warm_up: bool = field(default_factory=lambda: _bool("WARM_UP", True))
    # HOT_SWAP: follow registry.events to switch prod without a restart.
    hot_swap: bool = field(default_factory=lambda: _bool("HOT_SWAP", True))

    # CLAIM_IDLE_MS: a pending entry idle this long is claimed by a live worker.
    claim_idle_ms: int = field(default_factory=lambda: _int("CLAIM_IDLE_MS", 30_000))
    # MAX_DELIVERIES: deliveries before an entry goes to <stream>.dlq and its job fails.
    max_deliveries: int = field(default_factory=lambda: _int("MAX_DELIVERIES", 3))
    # MAX_RETRYABLE_DELIVERIES: deliveries that failed because a service was unavailable
    # (PostgreSQL, Redis) are retried without counting toward MAX_DELIVERIES, up to this many.
    max_retryable_deliveries: int = field(
        default_factory=lambda: _int("MAX_RETRYABLE_DELIVERIES", 200)
    )
    # SHARD_SWEEP_INTERVAL_S / SHARD_SWEEP_GRACE_S: how often a worker looks for shards Redis
    # lost, and how long a running job must have stood still before its missing shards (neither
    # stored, queued nor in progress) are dispatched again.
    shard_sweep_interval_s: float = field(
        default_factory=lambda: _float("SHARD_SWEEP_INTERVAL_S", 60.0)
    )
    shard_sweep_grace_s: float = field(default_factory=lambda: _float("SHARD_SWEEP_GRACE_S", 300.0))
    # RETENTION_INTERVAL_S: how often a worker prunes the processed table (the groups' dedupe
    # rows) below the oldest entry any event stream a group reads still holds.
    retention_interval_s: float = field(
        default_factory=lambda: _float("RETENTION_INTERVAL_S", 600.0)
    )
    # MAX_SHARDS_PER_JOB: a job whose dataset and shard size make more shards is refused (400).
    max_shards_per_job: int = field(default_factory=lambda: _int("MAX_SHARDS_PER_JOB", 1000))
    # MAX_ACTIVE_JOBS_PER_KEY: batch jobs one key (the actor) may have queued or running; one
    # more is refused (409) until one finishes.
    max_active_jobs_per_key: int = field(
        default_factory=lambda: _int("MAX_ACTIVE_JOBS_PER_KEY", 20)
    )
    # SHARD_SIZE: images per shard of a batch job.
    shard_size: int = field(default_factory=lambda: _int("SHARD_SIZE", 1000))
    # METRICS_PORT: where a worker serves its Prometheus /metrics (unset: a free port, printed
    # at start and announced under STATE_DIR/prometheus/targets for `just monitor`).
    metrics_port: int | None = field(default_factory=lambda: _int("METRICS_PORT", 0) or None)
    # STREAM_MAXLEN: approximate cap of streams no group reads (fan-out streams, dead letters).
    stream_maxlen: int = field(default_factory=lambda: _int("STREAM_MAXLEN", 100_000))
    # Paired rounds of a gate's latency run (~95 ms each for mnist_cnn at batch 64 on 2 cores).
    gate_latency_rounds: int = field(default_factory=lambda: _int("GATE_LATENCY_ROUNDS", 40))

    @property
    def cache_dir(self) -> Path:
        """Decoded-dataset cache."""
        return self.state_dir / "cache"


@cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()


def settings_or_exit() -> Settings:
    """The settings, or one line naming the bad variable and exit status 2 (entrypoints)."""
    try:
        return get_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
