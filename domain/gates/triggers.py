"""When gates start and promote by themselves: pure rules over the model's and the gate's state."""

from __future__ import annotations

import uuid
from datetime import datetime

from domain.gates.aggregate import PASSED, GateState
from domain.gates.commands import OpenGate
from domain.registry.commands import PromoteModelVersion
from domain.registry.state import STAGING, ModelState
from events.base import EventMetadata

# Namespace of automatic gate ids: one evaluation job starts at most one gate, even redelivered.
_AUTO_NAMESPACE = uuid.UUID("0b8e1c52-3f0e-4a57-8f3a-5f7f6c2d9a11")


def auto_gate_id(job_id: str) -> str:
    """The id of the automatic gate started by an evaluation job (a repeat starts no second)."""
    return str(uuid.uuid5(_AUTO_NAMESPACE, job_id))


def auto_gate_request(
    model: ModelState, model_version: str, dataset_id: str, job_id: str, from_gate: bool
) -> OpenGate | None:
    """The gate to start after ``job_id`` evaluated a version, or None.

    A staging version evaluated while the model has another prod version is gated against prod
    on the same dataset, if the policy has ``auto_gate`` on. Jobs a gate submitted itself
    (``from_gate``) start nothing: that gate is already running.
    """
    version = model.versions.get(model_version)
    if from_gate or not model.policy.auto_gate or version is None:
        return None
    if version.status != STAGING or model.prod is None or model.prod == model_version:
        return None
    return OpenGate(
        gate_id=auto_gate_id(job_id),
        model_name=model.model_name,
        candidate_version=model_version,
        baseline_version=model.prod,
        dataset_id=dataset_id,
        thresholds=model.policy.thresholds,
        auto=True,
        cause=job_id,
        reason=f"automatic gate after evaluation job {job_id}",
    )


def auto_promotion(
    model: ModelState, gate: GateState, now: datetime, metadata: EventMetadata
) -> PromoteModelVersion | None:
    """The promotion a PASS causes when the policy has ``auto_promote`` on, or None.

    Only while the gate's baseline is still prod and the candidate is still in staging.
    """
    outcome = gate.outcome()
    if outcome is None or gate.status != PASSED or not model.policy.auto_promote:
        return None
    version = model.versions.get(gate.candidate_version)
    if version is None or version.status != STAGING or model.prod != gate.baseline_version:
        return None
    return PromoteModelVersion(
        model_name=model.model_name,
        model_version=gate.candidate_version,
        gate_id=gate.gate_id,
        gates=(outcome,),
        now=now,
        metadata=metadata,
        reason=f"automatic promotion: gate {gate.gate_id} passed",
    )
