"""Commands of the regression-gate aggregate, in the imperative."""

from __future__ import annotations

import msgspec

from events.gates import GateThresholds


class RequestGate(msgspec.Struct, frozen=True, kw_only=True):
    """Compare a candidate version against a baseline on one dataset."""

    gate_id: str
    model_name: str
    candidate_version: str
    baseline_version: str
    dataset_id: str
    thresholds: GateThresholds = msgspec.field(default_factory=GateThresholds)
    auto: bool = False
    cause: str | None = None
    reason: str | None = None


class RecordGateEvaluations(msgspec.Struct, frozen=True, kw_only=True):
    """Record the batch jobs the gate compares; the first record wins."""

    gate_id: str
    candidate_job_id: str
    baseline_job_id: str
    submitted: list[str] = msgspec.field(default_factory=list)


class EvaluateGate(msgspec.Struct, frozen=True, kw_only=True):
    """Judge the gate from paired predictions and a paired latency run.

    Predictions are aligned by image: index i of each list is the same image of the dataset.
    Latencies are per batch, index i of each list measured on the same batch, alternately.
    """

    gate_id: str
    baseline_labels: list[int]
    candidate_labels: list[int]
    baseline_predictions: list[int]
    candidate_predictions: list[int]
    baseline_latency_ms: list[float]
    candidate_latency_ms: list[float]
    latency_batch_size: int
    latency_order: str = "ABBA"


class FailGate(msgspec.Struct, frozen=True, kw_only=True):
    """End the gate as errored: its evaluation cannot run."""

    gate_id: str
    reason: str


GateCommand = RequestGate | RecordGateEvaluations | EvaluateGate | FailGate


GateCommand = RequestGate | RecordGateEvaluations | EvaluateGate | FailGate
