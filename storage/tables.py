"""Table definitions (SQLAlchemy Core); Alembic autogenerates from this metadata."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

event_log = Table(
    "event_log",
    metadata,
    Column("position", BigInteger, Identity(always=True), primary_key=True),
    Column("stream_id", Text, nullable=False),
    Column("stream_version", Integer, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("event_type", Text, nullable=False),
    Column("schema_version", SmallInteger, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("actor", Text, nullable=False),
    Column("correlation_id", UUID(as_uuid=True), nullable=False),
    Column("causation_id", UUID(as_uuid=True), nullable=True),
    Column("trace_context", Text, nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("prev_hash", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    # How ``hash`` was computed (domain.audit.integrity): 1 legacy, 2 SHA-256, 3 HMAC-SHA-256.
    Column("hash_scheme", SmallInteger, nullable=False),
    UniqueConstraint("stream_id", "stream_version"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("model_name", Text, primary_key=True),
    Column("model_version", Text, primary_key=True),
    Column("status", Text, nullable=False),
    Column("artifact_uri", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("artifact_metadata", JSONB, nullable=False),
    Column("tags", JSONB, nullable=False),
    Column("registered_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("metrics", JSONB, nullable=True),
    Column("evaluations", JSONB, nullable=False, server_default="{}"),
    # The dataset ``metrics`` is measured on (domain/registry/reference.py); migration 0008.
    Column("reference_dataset", Text, nullable=True),
)

model_prod = Table(
    "model_prod",
    metadata,
    Column("model_name", Text, primary_key=True),
    Column("model_version", Text, nullable=True),
    Column("since", DateTime(timezone=True), nullable=True),
    Column("prod_stack", JSONB, nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("name", Text, primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

batch_jobs = Table(
    "batch_jobs",
    metadata,
    Column("job_id", Text, primary_key=True),
    Column("model_name", Text, nullable=False),
    Column("model_version", Text, nullable=False),
    Column("dataset_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("total", Integer, nullable=False),
    Column("done_images", Integer, nullable=False),
    Column("shards", Integer, nullable=False),
    Column("done_shards", Integer, nullable=False),
    Column("batch_size", Integer, nullable=False),
    Column("shard_size", Integer, nullable=False),
    Column("metrics", JSONB, nullable=True),
    Column("error", Text, nullable=True),
    Column("submitted_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_batch_jobs_model_status", "model_name", "status"),
    Index("ix_batch_jobs_created_at", "created_at"),
)

# High-volume data stays out of the log: one row per shard, arrays of per-image values.
batch_shard_results = Table(
    "batch_shard_results",
    metadata,
    Column("job_id", Text, primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("start", Integer, nullable=False),
    Column("stop", Integer, nullable=False),
    Column("predictions", ARRAY(SmallInteger), nullable=False),
    Column("labels", ARRAY(SmallInteger), nullable=False),
    Column("batch_latencies_ms", ARRAY(Double), nullable=False),
    Column("batch_sizes", ARRAY(Integer), nullable=False),
    Column("worker", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Consumer-group idempotency: written in the same transaction as a handler's effect.
processed = Table(
    "processed",
    metadata,
    Column("group_name", Text, primary_key=True),
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# API keys by name: only the SHA-256 of a key is stored; a request finds its key by that hash.
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_name", Text, primary_key=True),
    Column("role", Text, nullable=False),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("active", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", Text, nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_by", Text, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Regression gates, one row per gate stream (domain.gates.views.gate_row).
gates = Table(
    "gates",
    metadata,
    Column("gate_id", Text, primary_key=True),
    Column("model_name", Text, nullable=False),
    Column("candidate_version", Text, nullable=False),
    Column("baseline_version", Text, nullable=False),
    Column("dataset_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("verdict", Text, nullable=True),
    Column("auto", Boolean, nullable=False),
    Column("cause", Text, nullable=True),
    Column("requested_by", Text, nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("candidate_job_id", Text, nullable=True),
    Column("baseline_job_id", Text, nullable=True),
    Column("submitted", JSONB, nullable=False),
    Column("thresholds", JSONB, nullable=False),
    Column("checks", JSONB, nullable=False),
    Column("accuracy", JSONB, nullable=True),
    Column("latency", JSONB, nullable=True),
    Column("error", Text, nullable=True),
    # A model's gates newest first (pages), a candidate's outcomes, the gates waiting on a job.
    Index("ix_gates_model_requested", "model_name", "requested_at", "gate_id"),
    Index("ix_gates_model_candidate", "model_name", "candidate_version"),
    Index("ix_gates_candidate_job_id", "candidate_job_id"),
    Index("ix_gates_baseline_job_id", "baseline_job_id"),
)

# Each model's capture policy (domain.traffic), projected from its capture-<model> stream.
capture_policies = Table(
    "capture_policies",
    metadata,
    Column("model_name", Text, primary_key=True),
    Column("fraction", Double, nullable=False),
    Column("max_per_s", Double, nullable=False),
    Column("retention_days", Integer, nullable=False),
)

PROJECTION_TABLES = (model_versions, model_prod, batch_jobs, api_keys, gates, capture_policies)

# Console sessions (api/ui/session.py): not a projection, nothing in the log. The cookie holds a
# random id; only its SHA-256 is stored, with the key's SHA-256 (as api_keys), never the key.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("session_hash", Text, primary_key=True),
    Column("key_hash", Text, nullable=False),
    Column("key_name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("csrf_secret", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_console_sessions_key_hash", "key_hash"),
    Index("ix_console_sessions_last_seen_at", "last_seen_at"),
)

# The console's "latest audit" (and every earlier run): kept in PostgreSQL, where the audit's
# own reader can trust it more than a Redis key anyone who reaches Redis may set. Migration 0009.
audit_runs = Table(
    "audit_runs",
    metadata,
    Column("run_id", BigInteger, Identity(always=True), primary_key=True),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("actor", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("run", JSONB, nullable=False),  # domain.console.views.AuditRun as JSON
)

# The Merkle tree over the event log (RFC 9162, domain.audit.merkle), kept by a follower
# (storage.audit.tree): leaf i is the i-th row in position order (positions may have gaps).
log_tree_leaves = Table(
    "log_tree_leaves",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("position", BigInteger, nullable=False, unique=True),
    Column("hash", LargeBinary, nullable=False),
)

# Complete, aligned subtrees above the leaves: (level, idx) covers leaves idx·2^level onwards.
log_tree_nodes = Table(
    "log_tree_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),
)

# Signed tree heads (C2SP checkpoints) and the witnesses' cosignatures of them. Migration 0011.
log_checkpoints = Table(
    "log_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),  # the body and the log's signature line
    Column("created_at", DateTime(timezone=True), nullable=False),
)

log_cosignatures = Table(
    "log_cosignatures",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("witness", Text, primary_key=True),
    Column("line", Text, nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=False),
)

# Captured requests (domain.traffic): rows, not events (high volume); migration 0012.
captured_requests = Table(
    "captured_requests",
    metadata,
    Column("request_id", Text, primary_key=True),
    Column("model_name", Text, nullable=False),
    Column("model_version", Text, nullable=False),
    Column("captured_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("input", LargeBinary, nullable=False),  # the [28,28] tensor's raw bytes
    Column("input_dtype", Text, nullable=False),  # uint8 (0..255) or float32 ([0, 1])
    Column("prediction", Integer, nullable=False),
    Column("scores", ARRAY(Double), nullable=False),  # the logits; their count is the classes
    Column("latency_ms", Double, nullable=False),
    Column("trace_id", Text, nullable=True),
    Column("routed", Boolean, nullable=False, server_default="false"),
    Column("label", Integer, nullable=True),
    Column("labelled_at", DateTime(timezone=True), nullable=True),
    Index("ix_captured_requests_model_name_captured_at", "model_name", "captured_at"),
    Index("ix_captured_requests_expires_at", "expires_at"),
)

# Frozen traffic datasets (traffic:<name>): rows copied at freeze time, so they outlive retention.
traffic_dataset_items = Table(
    "traffic_dataset_items",
    metadata,
    Column("dataset_id", Text, primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("request_id", Text, nullable=False),
    Column("input", LargeBinary, nullable=False),
    Column("input_dtype", Text, nullable=False),
    Column("label", Integer, nullable=True),
)
