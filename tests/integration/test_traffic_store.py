"""The traffic adapters on real PostgreSQL: captured rows, labels, retention, frozen datasets,
and the capture policies every API process re-reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from domain.errors import InvalidInput, NotFound
from domain.registry.commands import RegisterModelVersion
from domain.traffic.commands import (
    CapturedRow,
    FreezeTrafficDataset,
    RecordCaptured,
    RecordFeedback,
    SetCapturePolicy,
)
from events.base import EventMetadata
from storage.traffic.store import TrafficDatasets

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="tester")


def _row(rid: str, name: str, at: datetime, days: int = 7, image=None) -> CapturedRow:
    image = np.full((28, 28), 9, np.uint8) if image is None else image
    dtype = "uint8" if image.dtype == np.uint8 else "float32"
    return CapturedRow(
        request_id=rid,
        model_name=name,
        model_version="v1",
        captured_at=at,
        input=image.tobytes(),
        input_dtype=dtype,
        prediction=1,
        scores=[0.1] * 10,
        latency_ms=2.0,
        retention_days=days,
    )


async def test_rows_labels_retention_and_a_mixed_dtype_dataset(
    platform, model_name, trained_artifacts
):
    p = platform
    await p.bus.handle(
        RegisterModelVersion(
            model_name=model_name,
            model_version="v1",
            source=str(trained_artifacts["v1"]),
            tags={},
            metadata=META,
        )
    )
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]
    ids = [f"{tag}-{i}" for i in range(4)]
    rows = [
        _row(ids[0], model_name, now),
        _row(ids[1], model_name, now),
        _row(ids[2], model_name, now, image=np.full((28, 28), 0.5, np.float32)),
        _row(ids[3], model_name, now - timedelta(days=3), days=1),
    ]  # already past retention
    assert await p.bus.handle(RecordCaptured(rows=rows)) == 4
    assert await p.bus.handle(RecordCaptured(rows=rows[:2])) == 0  # redelivered batch
    assert await p.bus.handle(RecordFeedback(items=[(ids[0], 3), (ids[2], 5)])) == 2
    captured = p.traffic_ports.captured
    assert await captured.labels_for(ids) == {ids[0]: 3, ids[2]: 5}
    with pytest.raises(NotFound, match=ids[3]):  # expired: a 404 naming it, even before deletion
        await p.bus.handle(RecordFeedback(items=[(ids[3], 1)]))
    assert await captured.expire(now) >= 1
    assert ids[3] not in await captured.labels_for(ids) and await captured.expire(now) == 0

    await p.bus.handle(
        FreezeTrafficDataset(model_name=model_name, dataset_id=f"traffic:{tag}", metadata=META)
    )
    datasets = TrafficDatasets(p.engine)
    assert await datasets.size(f"traffic:{tag}") == 2
    images, labels = await datasets.load(f"traffic:{tag}")
    # A float32 request among uint8 ones: every image in [0, 1], as the batcher would join them.
    assert images.dtype == np.float32 and images.shape == (2, 28, 28)
    assert images[0, 0, 0] == pytest.approx(9 / 255) and images[1, 0, 0] == 0.5
    assert labels.tolist() == [3, 5]
    assert await p.datasets.size(f"traffic:{tag}") == 2  # the catalogue batch and gate ask
    with pytest.raises(InvalidInput, match="no frozen traffic dataset"):
        await p.datasets.size("traffic:never-frozen")
    with pytest.raises(InvalidInput, match="invalid traffic dataset id"):
        await p.datasets.size("traffic:Bad Name")


async def test_policies_are_projected_for_the_api_processes(
    platform, model_name, trained_artifacts
):
    p = platform
    await p.bus.handle(
        RegisterModelVersion(
            model_name=model_name,
            model_version="v1",
            source=str(trained_artifacts["v1"]),
            tags={},
            metadata=META,
        )
    )
    cmd = SetCapturePolicy(
        model_name=model_name, fraction=0.2, max_per_s=5.0, retention_days=3, metadata=META
    )
    await p.bus.handle(cmd)
    found = {q.model_name: q for q in await p.traffic_ports.log.policies()}
    assert (found[model_name].fraction, found[model_name].retention_days) == (0.2, 3)
    await p.bus.handle(
        SetCapturePolicy(
            model_name=model_name, fraction=0.0, max_per_s=5.0, retention_days=3, metadata=META
        )
    )
    found = {q.model_name: q for q in await p.traffic_ports.log.policies()}
    assert found[model_name].fraction == 0.0
