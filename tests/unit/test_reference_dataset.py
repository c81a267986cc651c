"""A version's reference dataset and its figure on it (domain/registry/reference.py), the
projection's version rows, and the warning of a job on another dataset."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from domain.registry.reference import (
    accuracy_label,
    dataset_name,
    dataset_warning,
    on_reference,
    reference_accuracy,
    reference_dataset,
    reference_evaluation,
)
from domain.registry.state import fold
from events.base import EventMetadata, RecordedEvent
from events.gates import GatePolicy
from events.jobs import EvaluationRecorded
from events.registry import ArtifactMetadata, GatePolicySet, ModelVersionRegistered
from events.streams import model_stream_id
from storage.registry.projection import model_rows
from storage.tables import model_versions
from tests.unit.wiring import JobFakes

T0 = datetime(2026, 12, 5, 7, 0, tzinfo=UTC)
# The figures of issue 22: v2.0.0 on its own dataset, then a job on mnist_train and a 5-image one.
OWN = {"dataset_id": "fashion_mnist_10000", "job_id": "j-own", "accuracy": 0.9145, "images": 10000}
OTHER = {"dataset_id": "mnist_train", "job_id": "j-other", "accuracy": 0.1295, "images": 60000}
TINY = {"dataset_id": "fashion_mnist_5", "job_id": "j-tiny", "accuracy": 1.0, "images": 5}


def test_dataset_names_and_which_ids_measure_a_reference() -> None:
    assert dataset_name("fashion_mnist_10000") == "fashion_mnist"
    assert dataset_name("fashion_mnist_train") == dataset_name("fashion_mnist") == "fashion_mnist"
    assert dataset_name("mnist_test") == "mnist"
    assert dataset_name("fashion_mnist_train[:2000]") == "fashion_mnist"
    assert on_reference("fashion_mnist_10000", "fashion_mnist")
    assert on_reference("fashion_mnist_test", "fashion_mnist")
    assert not on_reference("fashion_mnist_train", "fashion_mnist")  # the training images
    assert not on_reference("mnist_10000", "fashion_mnist")
    assert on_reference("anything_5", None)  # nothing to compare with: no warning


def test_the_reference_is_the_gate_dataset_then_the_artifacts_then_the_models() -> None:
    assert reference_dataset("fashion_mnist_train") == "fashion_mnist"
    assert reference_dataset("fashion_mnist_train", gate_dataset="mnist_1000") == "mnist_1000"
    assert reference_dataset(None, others=[None, "mnist_train", "kmnist_train"]) == "mnist"
    assert reference_dataset(None, others=[None]) is None


def test_the_figure_is_the_reference_evaluation_not_the_latest_or_the_smallest() -> None:
    evaluations = {e["dataset_id"]: e for e in (OWN, OTHER, TINY)}
    assert reference_evaluation(evaluations, "fashion_mnist") == OWN
    assert reference_evaluation(evaluations, "fashion_mnist_5") == TINY  # named exactly
    assert reference_evaluation({"mnist_train": OTHER}, "fashion_mnist") is None
    assert reference_evaluation(evaluations, None) == OTHER  # no reference: the most images
    figure = reference_accuracy("fashion_mnist", OWN, {})
    assert figure is not None and figure.source == "evaluation" and figure.job_id == "j-own"
    assert figure.label == "91.45% on fashion_mnist_10000 (10,000 images)"


def test_before_any_job_the_figure_is_the_registrations_own_test_accuracy() -> None:
    artifact = {
        "test_metrics": {"accuracy": 0.8861},
        "training": {"eval_dataset": "fashion_mnist_test", "eval_samples": 10000},
    }
    figure = reference_accuracy("fashion_mnist", None, artifact)
    assert figure is not None and figure.source == "registration"
    assert figure.label == "88.61% on fashion_mnist_test (10,000 images, at registration)"
    assert reference_accuracy("mnist", None, artifact) is None  # measured on another dataset
    bare = reference_accuracy(None, None, {"test_metrics": {"accuracy": 0.5}})
    assert bare is not None and bare.dataset_id is None and bare.images is None
    assert bare.label == "50.00% (dataset not recorded, at registration)"
    assert accuracy_label(0.5, "mnist_5", None) == "50.00% on mnist_5 (image count not recorded)"
    assert accuracy_label(0.5, "mnist_5", 5) == "50.00% on mnist_5 (5 images)"


def _recorded(events: list, name: str = "m") -> list[RecordedEvent]:
    return [
        RecordedEvent(
            position=i,
            stream_id=model_stream_id(name),
            stream_version=i,
            event_id=uuid.uuid4(),
            recorded_at=T0 + timedelta(minutes=i),
            metadata=EventMetadata(actor="tester"),
            event=e,
        )
        for i, e in enumerate(events, 1)
    ]


def _registered(version: str, dataset: str | None) -> ModelVersionRegistered:
    return ModelVersionRegistered(
        model_name="m",
        model_version=version,
        artifact_uri=f"mem://m/{version}",
        sha256="0" * 64,
        size_bytes=1,
        metadata=ArtifactMetadata(dataset=dataset),
    )


def _evaluated(version: str, summary: dict) -> EvaluationRecorded:
    metrics = {k: v for k, v in summary.items() if k not in ("dataset_id", "job_id")}
    return EvaluationRecorded(
        model_name="m",
        model_version=version,
        job_id=summary["job_id"],
        dataset_id=summary["dataset_id"],
        metrics=metrics,
    )


def test_the_projection_keeps_the_reference_figure_after_jobs_on_other_datasets() -> None:
    events = [
        _registered("v1", "fashion_mnist_train"),
        _registered("v2", None),  # names no dataset: the model's other version does
        _evaluated("v1", OWN),
        _evaluated("v1", OTHER),
        _evaluated("v1", TINY),
        _evaluated("v2", OTHER),
    ]
    state = fold("m", _recorded(events))
    rows = {r["model_version"]: r for r in model_rows(state)[model_versions]}
    assert rows["v1"]["reference_dataset"] == "fashion_mnist" and rows["v1"]["metrics"] == OWN
    assert set(rows["v1"]["evaluations"]) == {
        "fashion_mnist_10000",
        "mnist_train",
        "fashion_mnist_5",
    }
    assert rows["v2"]["reference_dataset"] == "fashion_mnist" and rows["v2"]["metrics"] is None
    assert dataset_warning(state, "v1", "fashion_mnist_1000") is None
    warning = dataset_warning(state, "v1", "mnist_train")
    assert warning is not None and "mnist_train" in warning and "(fashion_mnist)" in warning


@pytest.mark.anyio
async def test_a_job_on_another_dataset_than_the_versions_warns_naming_both() -> None:
    jobs = JobFakes()
    jobs.uow.db.append_now(model_stream_id("r"), [_registered_r("v1", "tiny_train")])
    own = await jobs.submit(model_name="r", dataset_id="tiny_5", model_version="v1")
    assert own.warning is None
    other = await jobs.submit(model_name="r", dataset_id="mnist_250", model_version="v1")
    assert other.warning is not None
    assert "mnist_250 is not the reference dataset of r v1 (tiny)" in other.warning
    # No dataset named anywhere (model m): nothing to warn about.
    assert (await jobs.submit()).warning is None


def _registered_r(version: str, dataset: str) -> ModelVersionRegistered:
    return ModelVersionRegistered(
        model_name="r",
        model_version=version,
        artifact_uri=f"mem://r/{version}",
        sha256="1" * 64,
        size_bytes=1,
        metadata=ArtifactMetadata(dataset=dataset),
    )


def test_the_policys_gate_dataset_becomes_every_versions_reference() -> None:
    policy = GatePolicySet(model_name="m", policy=GatePolicy(gate_dataset="fashion_mnist_5"))
    events = [
        _registered("v1", "fashion_mnist_train"),
        _evaluated("v1", OWN),
        _evaluated("v1", TINY),
    ]
    state = fold("m", _recorded([*events, policy]))
    [row] = model_rows(state)[model_versions]
    assert row["reference_dataset"] == "fashion_mnist_5" and row["metrics"] == TINY
    warning = dataset_warning(state, "v1", "mnist_5")
    assert warning is not None and "(fashion_mnist_5)" in warning
