"""Every limit of the fault paths is a setting read from its environment variable."""

from __future__ import annotations

from functools import reduce

import pytest

from settings import Settings


def value(settings: Settings, path: str):
    """The field at ``group.name``."""
    return reduce(getattr, path.split("."), settings)


LIMITS = {
    "MAX_RETRYABLE_DELIVERIES": ("batch.max_retryable_deliveries", "7", 7),
    "SHARD_SWEEP_INTERVAL_S": ("batch.shard_sweep_interval_s", "2.5", 2.5),
    "SHARD_SWEEP_GRACE_S": ("batch.shard_sweep_grace_s", "30", 30.0),
    "RETENTION_INTERVAL_S": ("batch.retention_interval_s", "60", 60.0),
    "MAX_SHARDS_PER_JOB": ("batch.max_shards_per_job", "50", 50),
    "MAX_ACTIVE_JOBS_PER_KEY": ("batch.max_active_jobs_per_key", "3", 3),
    "DB_POOL_SIZE": ("database.pool_size", "4", 4),
    "DB_POOL_TIMEOUT_S": ("database.pool_timeout_s", "1.5", 1.5),
    "DB_STATEMENT_TIMEOUT_MS": ("database.statement_timeout_ms", "5000", 5000),
    "DB_LOCK_TIMEOUT_MS": ("database.lock_timeout_ms", "700", 700),
    "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS": ("database.idle_in_transaction_timeout_ms", "9000", 9000),
    "DB_KEEPALIVE_S": ("database.keepalive_s", "12", 12),
    "REGISTRATION_CONCURRENCY": ("database.registration_concurrency", "2", 2),
    "REGISTRATION_WAIT_S": ("database.registration_wait_s", "4", 4.0),
}


@pytest.mark.parametrize("variable", sorted(LIMITS))
def test_each_limit_is_read_from_its_variable(monkeypatch, variable: str) -> None:
    name, raw, expected = LIMITS[variable]
    default = value(Settings(), name)
    monkeypatch.setenv(variable, raw)
    assert value(Settings(), name) == expected != default


def test_registrations_at_once_follow_the_pool_unless_set(monkeypatch) -> None:
    monkeypatch.delenv("REGISTRATION_CONCURRENCY", raising=False)
    monkeypatch.setenv("DB_POOL_SIZE", "6")
    assert Settings().database.registration_concurrency == 3
