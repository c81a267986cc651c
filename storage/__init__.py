"""Adapters with side effects: PostgreSQL event store and projections, Redis Streams, artifacts."""
