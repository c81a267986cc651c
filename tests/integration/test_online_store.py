"""The online adapters on real PostgreSQL: runs projected for the API processes, paired outcomes
counted with the labels feedback gave, and a canary stepped and promoted by the evaluator's
command through the real bus (ModelVersionPromoted with canary_id)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
import pytest

from domain.online.commands import EvaluateOnline, RecordOutcomes, StartCanary, StartShadow
from domain.registry.commands import PromoteModelVersion, RegisterModelVersion
from domain.traffic.commands import CapturedRow, RecordCaptured, RecordFeedback
from events.base import EventMetadata
from events.online import CanaryCompleted, CanaryStepped, Margins, PairedOutcome
from events.registry import ModelVersionPromoted
from events.streams import model_stream_id
from storage import event_store

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="tester")


async def _model(p, name, trained_artifacts) -> None:
    for v in ("v1", "v2"):
        await p.bus.handle(
            RegisterModelVersion(
                model_name=name,
                model_version=v,
                source=str(trained_artifacts[v]),
                tags={},
                metadata=META,
            )
        )
    await p.bus.handle(PromoteModelVersion(model_name=name, model_version="v1", metadata=META))


def _pair(
    run: str, rid: str, name: str, prod: int, cand: int | None, step: int, by: str | None = None
) -> PairedOutcome:
    return PairedOutcome(
        run_id=run,
        request_id=rid,
        model_name=name,
        step=step,
        prod_version="v1",
        candidate_version="v2",
        prod_prediction=prod,
        candidate_prediction=cand,
        prod_latency_ms=2.0,
        candidate_latency_ms=2.1 if cand is not None else None,
        at=datetime.now(UTC),
        served_by=by,
    )


async def test_outcomes_counted_with_labels_and_runs_projected(
    platform, model_name, trained_artifacts
):
    p = platform
    await _model(p, model_name, trained_artifacts)
    await p.bus.handle(StartShadow(model_name=model_name, version="v2", metadata=META))
    running = {s.model_name: s for s in await p.online_ports.log.running()}
    shadow = running[model_name].shadow
    assert shadow.candidate_version == "v2" and shadow.prod_version == "v1"
    tag = uuid.uuid4().hex[:8]
    rows = [
        _pair(shadow.shadow_id, f"{tag}-{i}", model_name, 1, 1 if i else 2, 0) for i in range(4)
    ]
    rows.append(_pair(shadow.shadow_id, f"{tag}-x", model_name, 1, None, 0))
    assert await p.bus.handle(RecordOutcomes(rows=rows + rows[:1])) == 5
    now = datetime.now(UTC)
    captured = [
        CapturedRow(
            request_id=r.request_id,
            model_name=model_name,
            model_version="v1",
            captured_at=now,
            input=np.zeros((28, 28), np.uint8).tobytes(),
            input_dtype="uint8",
            prediction=1,
            scores=[0.0] * 10,
            latency_ms=1.0,
            retention_days=1,
        )
        for r in rows[:3]
    ]
    await p.bus.handle(RecordCaptured(rows=captured))
    await p.bus.handle(RecordFeedback(items=[(r.request_id, 2) for r in rows[:3]]))
    c = await p.online_ports.outcomes.counts(shadow.shadow_id, 0.2)
    assert (c.outcomes, c.answered, c.agree, c.labelled) == (5, 4, 3, 3)
    assert (c.candidate_only_right, c.prod_only_right, c.candidate_errors) == (1, 0, 1)
    assert c.prod_p95_ms == 2.0
    # The candidate took 1.05x prod's time: slower beyond a margin of 0.01, not of 0.2 (a margin
    # once reached PostgreSQL as an integer, 0, and an equal candidate read slower half the time).
    assert (c.timed, c.slower) == (4, 0)
    assert (await p.online_ports.outcomes.counts(shadow.shadow_id, 0.01)).slower == 4


async def test_a_canary_steps_and_promotes_through_the_real_bus(
    platform, model_name, trained_artifacts
):
    p = platform
    await _model(p, model_name, trained_artifacts)
    margins = Margins(min_labelled=0)
    start = StartCanary(
        model_name=model_name,
        version="v2",
        steps=[50, 100],
        min_requests=2,
        margins=margins,
        metadata=META,
    )
    recorded = await p.bus.handle(start)
    canary_id = recorded[0].event.canary_id
    ids = [f"{uuid.uuid4().hex[:8]}-{i}" for i in range(5)]
    # One answered by the candidate and three by prod (paired too): not yet the step's two.
    rows = [_pair(canary_id, ids[0], model_name, 1, 1, 0, "candidate")]
    rows += [_pair(canary_id, i, model_name, 1, 1, 0, "prod") for i in ids[1:4]]
    await p.bus.handle(RecordOutcomes(rows=rows))
    c = await p.online_ports.outcomes.counts(canary_id, 0.2, 0)
    assert (c.outcomes, c.candidate_served) == (4, 1)
    out = await p.bus.handle(EvaluateOnline(model_name=model_name, metadata=META))
    assert not any(isinstance(r.event, CanaryStepped) for r in out)
    # A row from before served_by was recorded (NULL) was the candidate's.
    await p.bus.handle(RecordOutcomes(rows=[_pair(canary_id, ids[4], model_name, 1, 1, 0)]))
    assert (await p.online_ports.outcomes.counts(canary_id, 0.2, 0)).candidate_served == 2
    out = await p.bus.handle(EvaluateOnline(model_name=model_name, metadata=META))
    assert isinstance(out[-1].event, CanaryStepped) and out[-1].event.share == 100
    running = {s.model_name: s for s in await p.online_ports.log.running()}
    assert running[model_name].canary.share == 100
    # No labels: the last step cannot PASS; prod stays v1.
    more = [f"{uuid.uuid4().hex[:8]}-{i}" for i in range(3)]
    await p.bus.handle(
        RecordOutcomes(rows=[_pair(canary_id, i, model_name, 1, 1, 1) for i in more])
    )
    assert await p.bus.handle(EvaluateOnline(model_name=model_name, metadata=META)) == []
    async with p.engine.connect() as conn:
        history = await event_store.load_stream(conn, model_stream_id(model_name))
    assert not any(isinstance(r.event, ModelVersionPromoted) and r.event.canary_id for r in history)
    assert not any(isinstance(r, CanaryCompleted) for r in out)
