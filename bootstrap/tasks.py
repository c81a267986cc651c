"""Background tasks, built here and supervised (observability.supervisor): the relay, stream
statistics, a worker's upkeep, the retention of processed rows."""

from __future__ import annotations

from bootstrap.platform import Platform


def build_shard_backlog(platform: Platform):
    """What the shard stream still holds (domain.dead_letters.ports.ShardBacklog), for the sweeper."""
    from storage.jobs.shard_sweep import RedisShardBacklog

    return RedisShardBacklog(platform.redis)


def build_retention(platform: Platform):
    """A periodic task: prune the processed table below what every stream still holds."""
    from domain.errors import ServiceUnavailable
    from observability.supervisor import every
    from storage.streams.retention import prune_processed

    async def prune() -> None:
        await prune_processed(platform.engine, platform.redis)

    interval = platform.settings.batch.retention_interval_s
    return every(interval, prune, expected=(ServiceUnavailable,), name="retention")


def build_traffic_retention(platform: Platform):
    """A periodic task: delete captured requests past their model's retention (a minute apart)."""
    from datetime import UTC, datetime

    from domain.errors import ServiceUnavailable
    from observability.supervisor import every

    captured = platform.traffic_ports.captured

    async def expire() -> None:
        while await captured.expire(datetime.now(UTC)) > 0:
            pass  # a batch at a time, until none is left

    return every(60.0, expire, expected=(ServiceUnavailable,), name="traffic-retention")


def build_checkpointer(platform: Platform):
    """A periodic task: extend the log's Merkle tree and sign a checkpoint when one is due."""
    from redis.exceptions import RedisError
    from sqlalchemy.exc import SQLAlchemyError

    from observability.supervisor import every

    expected = (RedisError, SQLAlchemyError, OSError)
    return every(1.0, platform.transparency.run_once, expected=expected, name="checkpointer")


def build_relay(platform: Platform):
    """The process's log-to-streams relay (built once per platform)."""
    return platform.relay


def build_stream_stats(platform: Platform):
    """A periodic task refreshing the stream and log gauges (lag, dead letters, relay, prod)."""
    from redis.exceptions import RedisError
    from sqlalchemy.exc import SQLAlchemyError

    from observability.metrics import instruments, register_holder_gauges
    from observability.supervisor import every
    from storage.streams import admin as stream_admin
    from storage.streams import log_stats

    holder: dict = {}
    register_holder_gauges({**stream_admin.GAUGES, **log_stats.GAUGES}, holder)

    async def refresh() -> None:
        stats = dict(holder.get("stats", {}))
        try:  # a Redis outage must not freeze the log gauges, nor the other way round
            stats.update(await stream_admin.stream_stats(platform.redis))
        finally:
            stats.update(await log_stats.log_stats(platform.engine))
            holder["stats"] = stats
            models = (labels["model_name"] for _, labels in stats["model_versions"])
            instruments().expect_models(models)  # their first batch job then shows in rate()

    expected = (RedisError, SQLAlchemyError, OSError)
    return every(5.0, refresh, expected=expected, name="stream-stats")


def build_worker_upkeep(platform: Platform, consumer: str):
    """A periodic task: the worker's heartbeat and safe stream trimming."""
    from redis.exceptions import RedisError

    from observability.supervisor import every
    from storage.streams.admin import heartbeat, trim_streams

    async def upkeep() -> None:
        await heartbeat(platform.redis, consumer)
        await trim_streams(platform.redis, platform.settings.redis.stream_maxlen)

    return every(5.0, upkeep, expected=(RedisError, OSError), name="upkeep")
