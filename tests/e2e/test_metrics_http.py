"""GET /metrics as Prometheus scrapes it: the exposition's own content type, sent once."""

from __future__ import annotations

import pytest
from prometheus_client import CONTENT_TYPE_LATEST

pytestmark = pytest.mark.anyio


async def test_metrics_content_type_names_its_charset_once(client) -> None:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=1.0.0; charset=utf-8"
    assert r.headers["content-type"] == CONTENT_TYPE_LATEST
    assert "request_count_total" in r.text
