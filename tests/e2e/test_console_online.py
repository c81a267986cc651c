"""The model page's online part over HTTP (no browser): capture policy with who set it, a
running canary's split and steps, its live fragment, and the new events in the timeline.

tests/browser/test_console_online_browser.py drives the same page in Chromium with a real
worker judging real traffic.
"""

from __future__ import annotations

import pytest

from domain.online.commands import AbortCanary, StartCanary, StartShadow
from events.base import EventMetadata
from tests.e2e import test_console as base

pytestmark = pytest.mark.anyio
console = base.console  # the fixture: the app with one key per role
OP = {"x-api-key": base.KEYS["operator"]}


async def test_the_model_page_shows_capture_shadow_and_canary(
    console, platform, model_name, state_dict_file
) -> None:
    async with console("reader") as rd, console("operator") as op:
        await base._model(op, model_name, state_dict_file, "v1", "v2")
        page = (await rd.get(f"/ui/models/{model_name}")).text
        assert "No policy was ever set" in page and "No canary running" in page
        assert 'data-active="no"' in page and "hx-get" not in page.split('id="online"')[1][:200]

        body = {"fraction": 0.25, "max_per_s": 40, "retention_days": 7, "reason": "night shift"}
        r = await op.put(f"/models/{model_name}/capture-policy", json=body, headers=OP)
        assert r.status_code == 200, r.text
        meta = EventMetadata(actor="canary-starter")
        start = StartCanary(model_name=model_name, version="v2", steps=[10, 50, 100], metadata=meta)
        await platform.bus.handle(start)
        await platform.bus.handle(
            StartShadow(model_name=model_name, version="v2", fraction=0.5, metadata=meta)
        )

        r = await rd.get(f"/ui/models/{model_name}")
        assert r.status_code == 200, r.text
        page = r.text
        # Capture: the figures and who set them (the operator key's name).
        assert "25.0%" in page and "at most 40 a second" in page and "kept 7 days" in page
        assert "operator-ann" in page and "night shift" in page
        # Canary: the split and the current step marked; the page polls while it runs.
        assert "prod v1 <strong>90%</strong>, candidate v2 <strong>10%</strong>" in page
        assert page.count('aria-current="step"') == 1
        assert f'hx-get="/ui/models/{model_name}/online"' in page
        assert "canary-starter" in page
        # Shadow: waiting for its first verdict.
        assert 'id="shadow-verdict">WAITING' in page and "50% of prod v1" in page
        # The timeline carries the new events with their one-line summaries.
        assert "CanaryStarted" in page and "steps 10% → 50% → 100%" in page
        assert "CapturePolicySet" in page and "kept 7 days" in page

        live = await rd.get(f"/ui/models/{model_name}/online")
        assert live.status_code == 200 and live.text.lstrip().startswith("{") is False
        assert 'id="canary-split"' in live.text and "<html" not in live.text

        await platform.bus.handle(
            AbortCanary(model_name=model_name, reason="enough", metadata=meta)
        )
        live = (await rd.get(f"/ui/models/{model_name}/online")).text
        assert "No canary running" in live and "ABORTED" in live and "stopped: enough" in live


async def test_the_online_fragment_refuses_bad_names_and_unknown_models(console) -> None:
    async with console("reader") as rd:
        assert (await rd.get("/ui/models/nobody-here/online")).status_code == 404
        assert (await rd.get("/ui/models/Bad%20Name/online")).status_code == 400
