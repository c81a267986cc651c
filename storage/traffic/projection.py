"""The capture policies' projection: one capture_policies row per model with a policy."""

from __future__ import annotations

from domain.traffic.policy import CaptureState, evolve_policy, fold_policy, policy_row
from events.traffic import CAPTURE_STREAM_PREFIX
from storage.repository import Projection
from storage.tables import capture_policies

CAPTURE_PROJECTION = "capture-projections"

CAPTURES: Projection[CaptureState] = Projection(
    name=CAPTURE_PROJECTION,
    prefix=CAPTURE_STREAM_PREFIX,
    key="model_name",
    fold=fold_policy,
    evolve=evolve_policy,
    rows=lambda state: {capture_policies: policy_row(state)},
    tables=(capture_policies,),
)
