"""Commands of regression gates, in the imperative.

Those carrying ``metadata`` are what entrypoints and the gate-evaluation group send to the
handlers; ``OpenGate``, ``RecordGateEvaluations``, ``EvaluateGate`` and ``EndGate`` are what the
handlers decide on through the aggregate.
"""

from __future__ import annotations

import msgspec

from domain.delivery import Delivery
from events.base import EventMetadata
from events.gates import GateThresholds


class OpenGate(msgspec.Struct, frozen=True, kw_only=True):
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
    warning: str | None = None


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


class EndGate(msgspec.Struct, frozen=True, kw_only=True):
    """End the gate as errored: its evaluation cannot run."""

    gate_id: str
    reason: str


GateCommand = OpenGate | RecordGateEvaluations | EvaluateGate | EndGate


class RequestGate(msgspec.Struct, frozen=True, kw_only=True):
    """Compare a candidate version against a baseline; without ``dataset_id``, on a dataset
    both were evaluated on. ``gate_id`` is new unless given."""

    model_name: str
    candidate_version: str
    baseline_version: str
    dataset_id: str | None = None
    gate_id: str | None = None
    reason: str | None = None
    metadata: EventMetadata


class StartGate(msgspec.Struct, frozen=True, kw_only=True):
    """On GateRequested: record which jobs the gate compares and submit the missing ones."""

    gate_id: str
    metadata: EventMetadata


class CheckGate(msgspec.Struct, frozen=True, kw_only=True):
    """Judge the gate if both its evaluations are in (once per delivery)."""

    gate_id: str
    delivery: Delivery
    metadata: EventMetadata


class CheckGatesOfJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job completed, failed or was cancelled: check every gate that waits on it."""

    job_id: str
    delivery: Delivery
    metadata: EventMetadata


class FailGate(msgspec.Struct, frozen=True, kw_only=True):
    """End a gate as errored with the reason (nothing if it already has a verdict)."""

    gate_id: str
    reason: str
    metadata: EventMetadata


class FailGatesOfJob(msgspec.Struct, frozen=True, kw_only=True):
    """End every gate still waiting on a job as errored (its entry was dead-lettered)."""

    job_id: str
    reason: str
    metadata: EventMetadata


class RequestAutomaticGate(msgspec.Struct, frozen=True, kw_only=True):
    """After an evaluation: gate a staging version against prod when the policy says so."""

    model_name: str
    model_version: str
    dataset_id: str
    job_id: str
    delivery: Delivery
    metadata: EventMetadata


class PromoteAfterGate(msgspec.Struct, frozen=True, kw_only=True):
    """After a PASS: promote the candidate when the policy has auto_promote on."""

    gate_id: str
    delivery: Delivery
    metadata: EventMetadata


class GetGatePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Read a model's current gate policy (folded from its stream, as promotions see it)."""

    model_name: str
