"""Online evaluation use cases: shadows and canaries started, judged, stepped, aborted, promoted.

The worker's evaluator calls ``evaluate_online`` for each model with something running, every
second; everything it decides is an event on ``online-<model>``, so a restarted worker (or a
second one) carries on from the log: a decision taken twice is refused by the stream version.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import msgspec

from domain import names
from domain.errors import Conflict, InvalidInput, NotFound, UnknownModel
from domain.online import sequential as sq
from domain.online.commands import (
    AbortCanary,
    EvaluateOnline,
    GetOnline,
    RecordOutcomes,
    StartCanary,
    StartShadow,
    StopShadow,
)
from domain.online.judge import describe, failing, judge
from domain.online.ports import OnlinePorts
from domain.online.state import (
    OnlineState,
    check_candidate,
    check_margins,
    check_steps,
)
from domain.registry.commands import PromoteModelVersion
from domain.registry.state import ModelState
from events.base import Event, EventMetadata, RecordedEvent
from events.online import (
    CanaryAborted,
    CanaryCompleted,
    CanaryStarted,
    CanaryStepped,
    ShadowStarted,
    ShadowStopped,
    ShadowVerdict,
)
from events.registry import PromotionRequested

VERDICT_EVERY_S = 10.0  # an unchanged verdict is recorded again at most this often
MAX_DURATION_S = 7 * 86400.0


async def _model(ports: OnlinePorts, model_name: str) -> ModelState:
    async with ports.uow() as tx:
        model = await tx.models.load(names.check_model_name(model_name))
    if not model.exists:
        raise UnknownModel(model_name)
    return model


async def _save(
    ports: OnlinePorts, state: OnlineState, events: list[Event], metadata: EventMetadata
) -> list[RecordedEvent]:
    return await ports.log.save(state, events, metadata) if events else []


async def start_shadow(cmd: StartShadow, ports: OnlinePorts) -> list[RecordedEvent]:
    """ShadowStarted; a repeat of the running shadow records nothing; another version is a 409."""
    model = await _model(ports, cmd.model_name)
    if not 0 < cmd.fraction <= 1:
        raise InvalidInput(f"fraction must be above 0 and at most 1, got {cmd.fraction:g}")
    if cmd.duration_s is not None and not 0 < cmd.duration_s <= MAX_DURATION_S:
        raise InvalidInput("--for must be above 0 and at most 7 days")
    margins = check_margins(cmd.margins)
    state = await ports.log.load(cmd.model_name)
    prod = check_candidate(state, set(model.versions), model.prod, cmd.version, "shadow")
    running = state.shadow
    if running is not None:
        if running.candidate_version == cmd.version and running.fraction == cmd.fraction:
            return []
        raise Conflict(
            f"{cmd.model_name} already shadows {running.candidate_version} "
            f"({running.shadow_id[:8]}); stop it first: just shadow {cmd.model_name} --stop"
        )
    now = ports.clock.now()
    until = now + timedelta(seconds=cmd.duration_s) if cmd.duration_s else None
    event = ShadowStarted(
        model_name=cmd.model_name,
        shadow_id=str(uuid.uuid4()),
        candidate_version=cmd.version,
        prod_version=prod,
        fraction=cmd.fraction,
        until=until,
        margins=margins,
        reason=names.check_reason(cmd.reason),
    )
    return await _save(ports, state, [event], cmd.metadata)


async def stop_shadow(cmd: StopShadow, ports: OnlinePorts) -> list[RecordedEvent]:
    """ShadowStopped; 404 when none is running."""
    await _model(ports, cmd.model_name)
    state = await ports.log.load(cmd.model_name)
    if state.shadow is None:
        raise NotFound(f"{cmd.model_name} has no shadow running")
    event = ShadowStopped(
        model_name=cmd.model_name,
        shadow_id=state.shadow.shadow_id,
        why="stopped",
        reason=names.check_reason(cmd.reason),
    )
    return await _save(ports, state, [event], cmd.metadata)


async def start_canary(cmd: StartCanary, ports: OnlinePorts) -> list[RecordedEvent]:
    """CanaryStarted; a second canary of the model is refused (409 naming the running one)."""
    model = await _model(ports, cmd.model_name)
    steps = check_steps(list(cmd.steps))
    if isinstance(cmd.min_requests, bool) or not 1 <= cmd.min_requests <= 10_000_000:
        raise InvalidInput("min_requests must be a whole number from 1 to 10,000,000")
    if not 0 < cmd.max_duration_s <= MAX_DURATION_S:
        raise InvalidInput("max_duration must be above 0 and at most 7 days")
    margins = check_margins(cmd.margins)
    state = await ports.log.load(cmd.model_name)
    running = state.canary
    if running is not None:
        raise Conflict(
            f"{cmd.model_name} already has canary {running.canary_id[:8]} of "
            f"{running.candidate_version} at {running.share}%; one canary per model "
            f"(just canary {cmd.model_name} --abort stops it)"
        )
    prod = check_candidate(state, set(model.versions), model.prod, cmd.version, "canary")
    event = CanaryStarted(
        model_name=cmd.model_name,
        canary_id=str(uuid.uuid4()),
        candidate_version=cmd.version,
        prod_version=prod,
        steps=steps,
        min_requests=cmd.min_requests,
        max_duration_s=float(cmd.max_duration_s),
        margins=margins,
        reason=names.check_reason(cmd.reason),
    )
    return await _save(ports, state, [event], cmd.metadata)


async def abort_canary(cmd: AbortCanary, ports: OnlinePorts) -> list[RecordedEvent]:
    """CanaryAborted by hand; 404 when none is running."""
    await _model(ports, cmd.model_name)
    state = await ports.log.load(cmd.model_name)
    c = state.canary
    if c is None:
        raise NotFound(f"{cmd.model_name} has no canary running")
    why = names.check_reason(cmd.reason) or "aborted by hand"
    event = CanaryAborted(
        model_name=cmd.model_name, canary_id=c.canary_id, step=c.step, check="stopped", why=why
    )
    return await _save(ports, state, [event], cmd.metadata)


async def record_outcomes(cmd: RecordOutcomes, ports: OnlinePorts) -> int:
    """Store paired outcomes; a redelivered batch stores nothing twice."""
    return await ports.outcomes.record(cmd.rows) if cmd.rows else 0


async def online_state(query: GetOnline, ports: OnlinePorts) -> OnlineState:
    """The model's shadow and canary; 404 for an unknown model."""
    await _model(ports, query.model_name)
    return await ports.log.load(query.model_name)


async def evaluate_online(cmd: EvaluateOnline, ports: OnlinePorts) -> list[RecordedEvent]:
    """Judge what runs for the model and record what follows (verdict, step, abort, promotion)."""
    model = await _model(ports, cmd.model_name)
    state = await ports.log.load(cmd.model_name)
    events = await _judge_shadow(state, model, ports)
    recorded = await _save(ports, state, events, cmd.metadata)
    if state.canary is not None:
        recorded += await _judge_canary(state, model, ports, cmd.metadata)
    return recorded


async def _judge_shadow(state: OnlineState, model: ModelState, ports: OnlinePorts) -> list[Event]:
    s = state.shadow
    if s is None:
        return []
    now = ports.clock.now()
    stop = None
    if model.prod != s.prod_version:
        stop = ("prod-changed", f"prod is now {model.prod}, not {s.prod_version}")
    elif s.until is not None and now >= s.until:
        stop = ("expired", f"its duration ended at {s.until:%Y-%m-%d %H:%M:%S}")
    counts = await ports.outcomes.counts(s.shadow_id, s.margins.latency)
    verdict, figures = judge(counts, s.margins)
    events: list[Event] = []
    due = s.verdict_at is None or (now - s.verdict_at).total_seconds() >= VERDICT_EVERY_S
    changed = verdict != s.verdict or (due and figures.outcomes != (s.figures or figures).outcomes)
    if changed or (stop and s.figures != figures):
        events.append(
            ShadowVerdict(
                model_name=state.model_name, shadow_id=s.shadow_id, verdict=verdict, figures=figures
            )
        )
    if stop:
        events.append(
            ShadowStopped(
                model_name=state.model_name, shadow_id=s.shadow_id, why=stop[0], reason=stop[1]
            )
        )
    return events


async def _judge_canary(
    state: OnlineState, model: ModelState, ports: OnlinePorts, metadata: EventMetadata
) -> list[RecordedEvent]:
    c = state.canary
    assert c is not None
    name = state.model_name
    if model.prod == c.candidate_version:  # promoted, then stopped before CanaryCompleted
        done = CanaryCompleted(model_name=name, canary_id=c.canary_id, figures=c.figures or _none())
        return await _save(ports, state, [done], metadata)
    if model.prod != c.prod_version:
        why = f"prod is now {model.prod}, not {c.prod_version}; the canary compared against it"
        return await _abort(ports, state, "prod-changed", why, None, metadata)
    verdict, figures = judge(await ports.outcomes.counts(c.canary_id, c.margins.latency), c.margins)
    bad = failing(figures)
    if bad is not None:
        return await _abort(ports, state, bad.name, describe(bad), figures, metadata)
    now = ports.clock.now()
    # A step needs min_requests answered by the candidate; prod's paired answers are evidence
    # for the statistics but do not show the candidate took its share.
    step_counts = await ports.outcomes.counts(c.canary_id, c.margins.latency, c.step)
    step_n = step_counts.candidate_served
    last = c.step == len(c.steps) - 1
    if step_n >= c.min_requests and not last:
        stepped = CanaryStepped(
            model_name=name,
            canary_id=c.canary_id,
            step=c.step + 1,
            share=c.steps[c.step + 1],
            figures=figures,
        )
        return await _save(ports, state, [stepped], metadata)
    if step_n >= c.min_requests and verdict == sq.PASS:
        # The promotion (or, with four eyes, its request) is the canary starter's: they asked
        # for it, so they are not the one who may approve it.
        starter = msgspec.structs.replace(metadata, actor=c.started_by or metadata.actor)
        result = await ports.promote(
            PromoteModelVersion(
                model_name=name,
                model_version=c.candidate_version,
                canary_id=c.canary_id,
                reason=f"canary {c.canary_id[:8]} passed every step ({c.steps})",
                metadata=starter,
            )
        )
        asked = [r.event for r in result.recorded if isinstance(r.event, PromotionRequested)]
        done = CanaryCompleted(
            model_name=name,
            canary_id=c.canary_id,
            figures=figures,
            approval_request=asked[0].request_id if asked else None,
        )
        return await _save(ports, state, [done], metadata)
    if (now - c.started_at).total_seconds() >= c.max_duration_s:
        pending = "; ".join(describe(k) for k in figures.checks if k.outcome != sq.PASS)
        why = f"INCONCLUSIVE after {c.max_duration_s:g} s at {c.share}%: {pending}"
        return await _abort(ports, state, "max-duration", why, figures, metadata)
    return []


def _none():
    from events.online import OnlineFigures

    return OnlineFigures(outcomes=0, labelled=0)


async def _abort(ports, state, check, why, figures, metadata) -> list[RecordedEvent]:
    c = state.canary
    event = CanaryAborted(
        model_name=state.model_name,
        canary_id=c.canary_id,
        step=c.step,
        check=check,
        why=why,
        figures=figures,
    )
    return await _save(ports, state, [event], metadata)


HANDLERS = {
    StartShadow: start_shadow,
    StopShadow: stop_shadow,
    StartCanary: start_canary,
    AbortCanary: abort_canary,
    RecordOutcomes: record_outcomes,
    GetOnline: online_state,
    EvaluateOnline: evaluate_online,
}
"""Which handler answers each online command (the message bus routes by command type)."""
