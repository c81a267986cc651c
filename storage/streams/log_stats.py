"""Gauge samples read from PostgreSQL: the event log's head, the relay's lag, prod versions."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.streams.relay import RELAY_CHECKPOINT

Samples = list[tuple[float, dict[str, str]]]

_HEAD_AND_LAG = text(
    """
    WITH published AS (
        SELECT coalesce((SELECT position FROM checkpoints WHERE name = :relay), 0) AS position
    )
    SELECT
        (SELECT coalesce(max(position), 0) FROM event_log) AS head,
        (SELECT position FROM published) AS published,
        (SELECT extract(epoch FROM clock_timestamp() - recorded_at) FROM event_log
          WHERE position > (SELECT position FROM published) ORDER BY position LIMIT 1) AS lag_s
    """
)
_VERSIONS = text(
    "SELECT model_name, count(*) AS versions FROM model_versions GROUP BY model_name "
    "ORDER BY model_name"
)
_PROD = text(
    "SELECT model_name, model_version FROM model_prod WHERE model_version IS NOT NULL "
    "ORDER BY model_name"
)

GAUGES = {
    "event_log_head_position": "Position of the newest event in the event log",
    "relay_lag_positions": "Events committed to the log but not yet published to Redis Streams",
    "relay_lag_seconds": "Age of the oldest event the relay has not yet published (0: none)",
    "model_prod_version": "1 for the version of each model that is in prod (an info gauge)",
    "model_versions": "Versions registered per model",
}


async def log_stats(engine: AsyncEngine) -> dict[str, Samples]:
    """Head position, relay lag in positions and seconds, prod versions, versions per model."""
    async with engine.connect() as conn:
        row = (await conn.execute(_HEAD_AND_LAG, {"relay": RELAY_CHECKPOINT})).one()
        prods = (await conn.execute(_PROD)).all()
        versions = (await conn.execute(_VERSIONS)).all()
    head, published = int(row.head), int(row.published)
    return {
        "event_log_head_position": [(float(head), {})],
        "relay_lag_positions": [(float(max(0, head - published)), {})],
        "relay_lag_seconds": [(max(0.0, float(row.lag_s or 0.0)), {})],
        "model_prod_version": [
            (1.0, {"model_name": name, "model_version": version}) for name, version in prods
        ],
        "model_versions": [(float(n), {"model_name": name}) for name, n in versions],
    }
