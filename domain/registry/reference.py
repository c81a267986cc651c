"""A version's reference dataset and its accuracy on it, as pure functions.

A model is trained for one dataset; its accuracy means something only on that dataset's test
images. ``reference_dataset`` says which dataset that is, ``reference_evaluation`` picks the
version's recorded evaluation on it (never one on another dataset, the training split or a
smaller slice when a larger one exists), and ``reference_accuracy`` is the figure every view
shows, with the dataset and the image count it was measured on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from domain.registry.state import ModelState

# '<name>_<N>' (the first N test images), '<name>_test' or '<name>_train', as ml.datasets.
_ID = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_]*?)_(?P<rest>train|test|\d+)$")


class ReferenceAccuracy(msgspec.Struct, frozen=True, kw_only=True):
    """A version's accuracy on its reference dataset, and what it was measured on.

    ``source`` is ``evaluation`` (a batch job, ``job_id``) or ``registration`` (the test metrics
    the artifact was registered with, before any job ran).
    """

    accuracy: float
    dataset_id: str | None
    images: int | None
    source: str
    job_id: str | None = None
    label: str


def dataset_name(dataset: str) -> str:
    """The dataset a dataset id selects from: ``fashion_mnist_10000`` -> ``fashion_mnist``.

    A slice written after the id (``fashion_mnist_train[:2000]``) is not part of the name.
    """
    base = dataset.split("[", 1)[0].strip()
    match = _ID.fullmatch(base)
    return match["name"] if match else base


def _is_test_split(dataset_id: str) -> bool:
    match = _ID.fullmatch(dataset_id)
    return match is not None and match["rest"] != "train"


def reference_dataset(
    trained_on: str | None,
    *,
    gate_dataset: str | None = None,
    others: Iterable[str | None] = (),
) -> str | None:
    """The dataset a version's accuracy is measured on, or None when nothing names one.

    The gate policy's dataset (an id) comes first; then the dataset the version's artifact
    metadata names (its training split ``x_train`` means the dataset ``x``); then the first
    that ``others`` (the model's other versions, newest first) names.
    """
    if gate_dataset:
        return gate_dataset
    for named in (trained_on, *others):
        if named:
            return dataset_name(named)
    return None


def on_reference(dataset_id: str, reference: str | None) -> bool:
    """Whether an evaluation on ``dataset_id`` measures the reference (its test images)."""
    if reference is None or dataset_id == reference:
        return True
    return _is_test_split(dataset_id) and dataset_name(dataset_id) == dataset_name(reference)


def reference_evaluation(
    evaluations: Mapping[str, Mapping[str, Any]], reference: str | None
) -> dict[str, Any] | None:
    """The latest evaluation on the reference itself, else on the most of its test images.

    With no reference known, the evaluation on the most images (any dataset) is the figure.
    """
    if reference in evaluations:
        return dict(evaluations[reference])
    fitting = [(k, e) for k, e in evaluations.items() if on_reference(k, reference)]
    if not fitting:
        return None
    _, best = max(fitting, key=lambda item: (item[1].get("images") or 0, item[0]))
    return dict(best)


def reference_accuracy(
    reference: str | None, metrics: Mapping[str, Any] | None, artifact: Mapping[str, Any]
) -> ReferenceAccuracy | None:
    """The figure to show: the reference evaluation, else the artifact's own test accuracy.

    ``metrics`` is what ``reference_evaluation`` picked; ``artifact`` the registration's
    metadata (``test_metrics``, ``training.eval_dataset`` and ``eval_samples``).
    """
    if metrics and isinstance(metrics.get("accuracy"), int | float):
        return _figure(
            metrics["accuracy"],
            metrics.get("dataset_id"),
            metrics.get("images"),
            "evaluation",
            metrics.get("job_id"),
        )
    accuracy = (artifact.get("test_metrics") or {}).get("accuracy")
    training = artifact.get("training") or {}
    measured_on = training.get("eval_dataset")
    if not isinstance(accuracy, int | float):
        return None
    if measured_on and reference and not on_reference(measured_on, reference):
        return None  # measured on another dataset than the reference: not its figure
    return _figure(accuracy, measured_on, training.get("eval_samples"), "registration", None)


def _figure(
    accuracy: float, dataset_id: str | None, images: Any, source: str, job_id: str | None
) -> ReferenceAccuracy:
    count = images if isinstance(images, int) and not isinstance(images, bool) else None
    return ReferenceAccuracy(
        accuracy=float(accuracy),
        dataset_id=dataset_id,
        images=count,
        source=source,
        job_id=job_id,
        label=accuracy_label(float(accuracy), dataset_id, count, source),
    )


def accuracy_label(
    accuracy: float, dataset_id: str | None, images: int | None, source: str = "evaluation"
) -> str:
    """'91.45% on fashion_mnist_10000 (10,000 images)', saying what is unknown."""
    when = ", at registration" if source == "registration" else ""
    if not dataset_id:
        return f"{accuracy:.2%} (dataset not recorded{when})"
    count = f"{images:,} images" if images is not None else "image count not recorded"
    return f"{accuracy:.2%} on {dataset_id} ({count}{when})"


def model_references(state: ModelState) -> dict[str, str | None]:
    """The reference dataset of every version of a model, from its folded state (one sort)."""
    gate = state.policy.gate_dataset  # the policy's gate dataset comes first when set
    by_age = sorted(state.versions.values(), key=lambda v: v.created_at, reverse=True)
    naming = [v for v in by_age if v.metadata.dataset][:2]  # a version's fallback is another
    return {
        name: reference_dataset(
            v.metadata.dataset,
            gate_dataset=gate,
            others=[n.metadata.dataset for n in naming if n.model_version != name],
        )
        for name, v in state.versions.items()
    }


def version_reference(state: ModelState, version: str) -> str | None:
    """The reference dataset of one version of a model."""
    return model_references(state)[version]


def dataset_warning(state: ModelState, version: str, dataset_id: str) -> str | None:
    """A note when ``dataset_id`` is not what the version's accuracy is measured on."""
    reference = version_reference(state, version)
    if on_reference(dataset_id, reference):
        return None
    return (
        f"{dataset_id} is not the reference dataset of {state.model_name} {version} "
        f"({reference}): this evaluation is kept beside the reference figure, which the "
        "registry and the console keep showing"
    )
