"""The registry's projection: a model's versions (model_versions) and its prod alias (model_prod).

A version row's ``metrics`` is its evaluation on its reference dataset (``reference_dataset``,
domain/registry/reference.py), not the latest one whatever its dataset; ``evaluations`` keeps
the latest per dataset.
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain.registry.reference import model_references, reference_evaluation
from domain.registry.state import ModelState, VersionState, evolve, fold
from events.streams import MODEL_STREAM_PREFIX
from storage.repository import Projection, Rows
from storage.tables import model_prod, model_versions

REGISTRY_PROJECTION = "registry-projections"


def version_row(v: VersionState, reference: str | None = None) -> dict[str, Any]:
    """The model_versions row of a version, as plain values, its figures on ``reference``."""
    return {
        "model_name": v.model_name,
        "model_version": v.model_version,
        "status": v.status,
        "artifact_uri": v.artifact_uri,
        "sha256": v.sha256,
        "size_bytes": v.size_bytes,
        "tags": dict(v.tags),
        "created_at": v.created_at,
        "updated_at": v.updated_at,
        "registered_by": v.registered_by,
        "metrics": reference_evaluation(v.evaluations, reference),
        "evaluations": v.evaluations,
        "reference_dataset": reference,
        "artifact_metadata": msgspec.to_builtins(v.metadata),
    }


def prod_row(state: ModelState) -> dict[str, Any]:
    """The model_prod row of a model."""
    return {
        "model_name": state.model_name,
        "model_version": state.prod,
        "since": state.prod_since,
        "prod_stack": list(state.prod_stack),
    }


def model_rows(state: ModelState) -> Rows:
    """Every row a model's state projects to (versions never disappear, so none is deleted)."""
    references = model_references(state)
    return {
        model_versions: [version_row(v, references[name]) for name, v in state.versions.items()],
        model_prod: [prod_row(state)],
    }


MODELS: Projection[ModelState] = Projection(
    name=REGISTRY_PROJECTION,
    prefix=MODEL_STREAM_PREFIX,
    key="model_name",
    fold=fold,
    evolve=evolve,
    rows=model_rows,
    tables=(model_versions, model_prod),
)
