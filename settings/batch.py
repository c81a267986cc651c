"""Consumer groups: batch jobs and gates."""

from __future__ import annotations

from dataclasses import dataclass

from settings.parse import number, whole


@dataclass(frozen=True)
class BatchSettings:
    """Consumer groups and batch jobs: deliveries, shards, limits ([batch](docs/batch.md))."""

    claim_idle_ms: int = whole(
        "CLAIM_IDLE_MS", 30_000, "A pending entry idle this long is claimed by a live worker."
    )
    max_deliveries: int = whole(
        "MAX_DELIVERIES", 3, "Deliveries before an entry goes to `<stream>.dlq` and its job fails."
    )
    max_retryable_deliveries: int = whole(
        "MAX_RETRYABLE_DELIVERIES",
        200,
        "Deliveries that failed on an unavailable PostgreSQL or Redis do not count toward "
        "`MAX_DELIVERIES`; past this many the entry is dead-lettered too.",
    )
    shard_size: int = whole("SHARD_SIZE", 1000, "Images per shard of a batch job.")
    max_shards_per_job: int = whole(
        "MAX_SHARDS_PER_JOB",
        1000,
        "A job whose dataset and shard size make more shards is refused (400).",
    )
    max_active_jobs_per_key: int = whole(
        "MAX_ACTIVE_JOBS_PER_KEY",
        20,
        "Jobs one key may have queued or running; the next is refused (409).",
    )
    shard_sweep_interval_s: float = number(
        "SHARD_SWEEP_INTERVAL_S", 60.0, "How often a worker looks for shards Redis lost."
    )
    shard_sweep_grace_s: float = number(
        "SHARD_SWEEP_GRACE_S",
        300.0,
        "How long a running job must stand still before its missing shards are sent again.",
    )
    retention_interval_s: float = number(
        "RETENTION_INTERVAL_S",
        600.0,
        "How often a worker prunes the `processed` rows below what the streams still hold.",
    )


@dataclass(frozen=True)
class GateSettings:
    """Promotion gates ([gates](docs/gates.md))."""

    # ~0.1 s per round of two batches of 64 on two CPU cores, so ~8 s. At 40, an equally fast
    # candidate on a loaded 2-core machine came out INCONCLUSIVE (sign-test interval 0.907-1.125
    # against +10%, in a CI run of the README's First hour); twice the rounds narrow it ~1/sqrt(2).
    latency_rounds: int = whole(
        "GATE_LATENCY_ROUNDS",
        80,
        "Paired rounds of a gate's latency run (~95 ms each for mnist_cnn at batch 64, 2 cores).",
    )
