"""The online evaluation tables (migration 0013), on the shared metadata of storage.tables."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Double, Integer, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

from storage.tables import metadata

# Each model's running shadow and canary (domain.online), projected from online-<model>;
# every API process re-reads it each half second to mirror and route.
online_runs = Table(
    "online_runs",
    metadata,
    Column("model_name", Text, primary_key=True),
    Column("shadow", JSONB, nullable=True),
    Column("canary", JSONB, nullable=True),
    Column("ended", JSONB, nullable=False),
)

# Paired outcomes of shadows and canaries: rows, not events (high volume). Their labels come
# from captured_requests (feedback), joined by request id.
online_outcomes = Table(
    "online_outcomes",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("request_id", Text, primary_key=True),
    Column("model_name", Text, nullable=False),
    Column("step", Integer, nullable=False),
    Column("prod_version", Text, nullable=False),
    Column("candidate_version", Text, nullable=False),
    Column("prod_prediction", Integer, nullable=True),
    Column("candidate_prediction", Integer, nullable=True),
    Column("prod_latency_ms", Double, nullable=True),
    Column("candidate_latency_ms", Double, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("served_by", Text, nullable=True),  # "prod" | "candidate" (NULL: before 0014)
)
