"""Every limit of the fault paths is a setting read from its environment variable."""

from __future__ import annotations

import pytest

from settings import Settings

LIMITS = {
    "MAX_RETRYABLE_DELIVERIES": ("max_retryable_deliveries", "7", 7),
    "SHARD_SWEEP_INTERVAL_S": ("shard_sweep_interval_s", "2.5", 2.5),
    "SHARD_SWEEP_GRACE_S": ("shard_sweep_grace_s", "30", 30.0),
    "RETENTION_INTERVAL_S": ("retention_interval_s", "60", 60.0),
    "MAX_SHARDS_PER_JOB": ("max_shards_per_job", "50", 50),
    "MAX_ACTIVE_JOBS_PER_KEY": ("max_active_jobs_per_key", "3", 3),
    "DB_POOL_SIZE": ("db_pool_size", "4", 4),
    "DB_POOL_TIMEOUT_S": ("db_pool_timeout_s", "1.5", 1.5),
    "DB_STATEMENT_TIMEOUT_MS": ("db_statement_timeout_ms", "5000", 5000),
    "DB_LOCK_TIMEOUT_MS": ("db_lock_timeout_ms", "700", 700),
    "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS": ("db_idle_in_transaction_timeout_ms", "9000", 9000),
    "DB_KEEPALIVE_S": ("db_keepalive_s", "12", 12),
    "REGISTRATION_CONCURRENCY": ("registration_concurrency", "2", 2),
    "REGISTRATION_WAIT_S": ("registration_wait_s", "4", 4.0),
}


@pytest.mark.parametrize("variable", sorted(LIMITS))
def test_each_limit_is_read_from_its_variable(monkeypatch, variable: str) -> None:
    name, raw, value = LIMITS[variable]
    default = getattr(Settings(), name)
    monkeypatch.setenv(variable, raw)
    assert getattr(Settings(), name) == value != default


def test_registrations_at_once_follow_the_pool_unless_set(monkeypatch) -> None:
    monkeypatch.delenv("REGISTRATION_CONCURRENCY", raising=False)
    monkeypatch.setenv("DB_POOL_SIZE", "6")
    assert Settings().registration_concurrency == 3
