"""Which gates count for a promotion: on the policy's dataset, on enough images, fresh, and not
overruled by a FAIL of the same comparison on at least as many images."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

import msgspec

from events.gates import FAIL, INCONCLUSIVE, PASS, GatePolicy

# A dataset id as the catalogue writes it: a name, then a split (train, test) or a size.
_DATASET_ID = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_]*?)_(?:train|test|[+-]?\d+)$")


class GateOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What the promotion rule needs to know about one finished gate (from the gate store)."""

    gate_id: str
    model_name: str
    candidate_version: str
    baseline_version: str
    verdict: str  # PASS, FAIL, INCONCLUSIVE or ERRORED
    decided_at: datetime
    # What the gate compared on: the promotion rule counts only gates on the right data.
    dataset_id: str = ""
    images: int | None = None
    # An INCONCLUSIVE gate: the evidence it still needs, in words.
    needed: str | None = None


def dataset_family(dataset_id: str) -> str:
    """The dataset a dataset id draws from: ``fashion_mnist`` for ``fashion_mnist_10000`` (and for
    a registration's ``fashion_mnist_train[:2000]``, a slice of its training split)."""
    plain = dataset_id.split("[", 1)[0].strip()
    m = _DATASET_ID.match(plain)
    return m.group("name") if m else plain


def required_dataset(policy: GatePolicy, reference: str | None) -> tuple[str | None, bool]:
    """The dataset a counting gate must use and whether exactly (the policy's) or by family
    (the model's reference dataset); (None, False) when neither is known."""
    if policy.gate_dataset:
        return policy.gate_dataset, True
    return reference or None, False


def why_not_counted(policy: GatePolicy, required: tuple[str | None, bool], g: GateOutcome) -> str:
    """Why gate ``g`` does not count by its dataset or size; empty when it does."""
    dataset, exact = required
    if dataset is not None:
        same = g.dataset_id == dataset if exact else _same_family(g.dataset_id, dataset)
        if not same:
            whose = "the policy's gate_dataset" if exact else "the model's reference dataset"
            return f"gate {g.gate_id} ran on {g.dataset_id or 'an unknown dataset'}, not on {dataset} ({whose})"
    if policy.min_gate_images and (g.images or 0) < policy.min_gate_images:
        return (
            f"gate {g.gate_id} compared {g.images or 0} images, fewer than the policy's "
            f"min_gate_images {policy.min_gate_images}"
        )
    return ""


def dataset_warning(
    policy: GatePolicy, reference: str | None, dataset_id: str, images: int
) -> str | None:
    """A warning for a gate asked for on data whose verdict will not clear a promotion."""
    dataset, exact = required_dataset(policy, reference)
    if dataset is not None:
        same = dataset_id == dataset if exact else _same_family(dataset_id, dataset)
        if not same:
            whose = "the policy's gate_dataset" if exact else "the model's reference dataset"
            return (
                f"{dataset_id} is not {dataset} ({whose}): this gate's verdict will not clear "
                "a promotion"
            )
    if policy.min_gate_images and images < policy.min_gate_images:
        return (
            f"{dataset_id} has {images} images, fewer than the policy's min_gate_images "
            f"{policy.min_gate_images}: this gate's verdict will not clear a promotion"
        )
    return None


def overruling_fail(g: GateOutcome, gates: Sequence[GateOutcome]) -> GateOutcome | None:
    """A FAIL of the same candidate against the same baseline on at least as many images as the
    PASS ``g`` (on any dataset, before or after it): a smaller PASS does not erase it."""
    fails = [
        f
        for f in gates
        if f.verdict == FAIL
        and (f.model_name, f.candidate_version, f.baseline_version)
        == (g.model_name, g.candidate_version, g.baseline_version)
        and (f.images or 0) >= (g.images or 0)
    ]
    return max(fails, key=lambda f: (f.images or 0, f.decided_at), default=None)


def counting_pass(
    policy: GatePolicy,
    required: tuple[str | None, bool],
    model_name: str,
    candidate: str,
    baseline: str,
    gates: Sequence[GateOutcome],
    now: datetime,
) -> GateOutcome | None:
    """The newest PASS of this candidate against this baseline that clears a promotion."""
    fitting = [
        g
        for g in gates
        if (g.model_name, g.candidate_version, g.baseline_version)
        == (model_name, candidate, baseline)
        and clears(policy, g)
        and (now - g.decided_at).total_seconds() <= policy.max_gate_age_s
        and not why_not_counted(policy, required, g)
        and overruling_fail(g, gates) is None
    ]
    return max(fitting, key=lambda g: g.decided_at, default=None)


def clears(policy: GatePolicy, g: GateOutcome) -> bool:
    """A PASS clears; an INCONCLUSIVE only where the policy says on_inconclusive allow."""
    return g.verdict == PASS or (g.verdict == INCONCLUSIVE and policy.on_inconclusive == "allow")


def why_no_pass(
    policy: GatePolicy,
    required: tuple[str | None, bool],
    latest: GateOutcome,
    gates: Sequence[GateOutcome],
    now: datetime,
) -> str:
    """Why the latest gate of the comparison does not clear it (one clause, or empty)."""
    if latest.verdict == INCONCLUSIVE and not clears(policy, latest):
        where = f" on {latest.dataset_id}" if latest.dataset_id else ""
        more = latest.needed or "more evidence"
        return (
            f"its latest gate {latest.gate_id} was INCONCLUSIVE{where} and the policy's "
            f"on_inconclusive is block: it needs {more}; "
        )
    if not clears(policy, latest):
        where = f" on {latest.dataset_id}" if latest.dataset_id else ""
        return f"its latest gate {latest.gate_id} ended {latest.verdict}{where}; "
    refusal = why_not_counted(policy, required, latest)
    if refusal:
        return f"{refusal}; "
    fail = overruling_fail(latest, gates)
    if fail is not None:
        return (
            f"its PASS {latest.gate_id} ({_size(latest)}) does not erase the FAIL {fail.gate_id} "
            f"on {fail.dataset_id or 'its dataset'} ({_size(fail)}): a FAIL stands against any "
            "PASS on as many images or fewer; "
        )
    age = (now - latest.decided_at).total_seconds()
    return f"its latest PASS {latest.gate_id} is {_age(age)} old; "


def _same_family(a: str, b: str) -> bool:
    return a == b or dataset_family(a) == dataset_family(b)


def _size(g: GateOutcome) -> str:
    return f"{g.images} images" if g.images is not None else "unknown size"


def _age(seconds: float) -> str:
    """An age as hours past an hour, else seconds."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds:.0f}s"
