"""Trail bundles and promotion receipts for the entrypoints, built over the process's log."""

from __future__ import annotations

from domain.audit.ports import TransparencyPort
from storage.audit.bundles import TrailExports


def trail_exports(transparency: TransparencyPort) -> TrailExports:
    """The exporter over the TransparencyLog the composition root built (its engine and key)."""
    return TrailExports(transparency)  # type: ignore[arg-type]
