"""Traffic use cases: capture policies, recording captured requests, feedback, frozen datasets."""

from __future__ import annotations

import hashlib

from domain import names
from domain.errors import InvalidInput, UnknownModel
from domain.traffic.commands import (
    FreezeTrafficDataset,
    GetCapturePolicy,
    RecordCaptured,
    RecordFeedback,
    SetCapturePolicy,
)
from domain.traffic.policy import (
    MAX_FROZEN,
    CapturePolicy,
    check_feedback,
    check_policy,
    decide_policy,
    judge_feedback,
    traffic_dataset_name,
)
from domain.traffic.ports import FrozenRow, TrafficPorts
from events.base import RecordedEvent
from events.traffic import TRAFFIC_DATASET_PREFIX, CapturePolicySet, TrafficDatasetFrozen


async def _known_model(ports: TrafficPorts, model_name: str) -> None:
    async with ports.uow() as tx:
        model = await tx.models.load(names.check_model_name(model_name))
    if not model.exists:
        raise UnknownModel(model_name)


async def set_capture_policy(cmd: SetCapturePolicy, ports: TrafficPorts) -> list[RecordedEvent]:
    """Record CapturePolicySet on ``capture-<model>``; a repeat of the current one records nothing."""
    fraction, max_per_s, days = check_policy(cmd.fraction, cmd.max_per_s, cmd.retention_days)
    await _known_model(ports, cmd.model_name)
    event = CapturePolicySet(
        model_name=cmd.model_name,
        fraction=fraction,
        max_per_s=max_per_s,
        retention_days=days,
        reason=names.check_reason(cmd.reason),
    )
    state = await ports.log.load_policy(cmd.model_name)
    if not decide_policy(state, event):
        return []
    return await ports.log.save_policy(state, event, cmd.metadata)


async def capture_policy(query: GetCapturePolicy, ports: TrafficPorts) -> CapturePolicy:
    """The model's capture policy (fraction 0 when none was set); 404 for an unknown model."""
    await _known_model(ports, query.model_name)
    state = await ports.log.load_policy(query.model_name)
    return state.policy or CapturePolicy(model_name=query.model_name)


async def record_captured(cmd: RecordCaptured, ports: TrafficPorts) -> int:
    """Store captured requests; a redelivered batch stores nothing twice."""
    return await ports.captured.record(cmd.rows) if cmd.rows else 0


async def record_feedback(cmd: RecordFeedback, ports: TrafficPorts) -> int:
    """Label captured requests, all or none (see ``judge_feedback``); how many were new."""
    items = cmd.items
    check_feedback(items)  # 400s before any read
    now = ports.clock.now()
    return await ports.captured.label(items, lambda found: judge_feedback(items, found), now)


def content_digest(rows: list[FrozenRow]) -> str:
    """SHA-256 over each row's id, input dtype, input bytes and label, in dataset order."""
    h = hashlib.sha256()
    for r in rows:
        label = "" if r.label is None else str(r.label)
        h.update(f"{r.request_id}\n{r.input_dtype}\n{len(r.input)}\n".encode())
        h.update(r.input)
        h.update(f"\n{label}\n".encode())
    return h.hexdigest()


async def freeze_traffic_dataset(
    cmd: FreezeTrafficDataset, ports: TrafficPorts
) -> list[RecordedEvent]:
    """Freeze the model's captured requests in [since, until) into ``traffic:<name>``
    (TrafficDatasetFrozen with the manifest and its content digest)."""
    name = traffic_dataset_name(cmd.dataset_id)
    await _known_model(ports, cmd.model_name)
    if cmd.since and cmd.until and cmd.since >= cmd.until:
        raise InvalidInput(f"since ({cmd.since:%Y-%m-%d %H:%M}) must be before until")

    def build(rows: list[FrozenRow]) -> TrafficDatasetFrozen:
        if not rows:
            what = "labelled captured requests" if cmd.labelled_only else "captured requests"
            raise InvalidInput(
                f"model {cmd.model_name!r} has no {what} in that period; set a capture policy "
                "(just capture) and send traffic (and POST /feedback for labels) first"
            )
        if len(rows) > MAX_FROZEN:
            raise InvalidInput(
                f"{len(rows):,} requests match; a dataset holds at most {MAX_FROZEN:,}: "
                "narrow --since/--until"
            )
        return TrafficDatasetFrozen(
            dataset_id=f"{TRAFFIC_DATASET_PREFIX}{name}",
            model_name=cmd.model_name,
            since=cmd.since,
            until=cmd.until,
            labelled_only=cmd.labelled_only,
            request_ids=[r.request_id for r in rows],
            labelled=sum(r.label is not None for r in rows),
            digest=content_digest(rows),
            reason=names.check_reason(cmd.reason),
        )

    return await ports.log.freeze(
        name, cmd.model_name, cmd.since, cmd.until, cmd.labelled_only, build, cmd.metadata
    )


HANDLERS = {
    SetCapturePolicy: set_capture_policy,
    GetCapturePolicy: capture_policy,
    RecordCaptured: record_captured,
    RecordFeedback: record_feedback,
    FreezeTrafficDataset: freeze_traffic_dataset,
}
"""Which handler answers each traffic command (the message bus routes by command type)."""
