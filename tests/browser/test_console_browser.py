"""The web console in a real browser (Debian's Chromium through Playwright), against a real API
process and a real worker: a job advancing live to done, a gate's checks, an operator's promotion
landing in the timeline, a reader who sees no action and whose forged forms are refused, axe-core
on every page, and the README's screenshots (reports/ui-model.png, reports/ui-job.png).

The tests run in file order on one stack: the job evaluates v1, the gate reuses that evaluation.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import REPORTS, api_client, assert_accessible, login

pytestmark = pytest.mark.slow
WAIT_MS = 240_000  # a wait that runs out fails the test


def test_a_running_job_advances_to_done_without_a_reload(chromium, stack) -> None:
    url, model = stack["url"], stack["model"]
    with api_client(url, "operator") as api:
        body = {
            "model_name": model,
            "dataset_id": "fashion_mnist_10000",
            "config": {"batch_size": 250, "shard_size": 500},
        }
        r = api.post("/batch/submit", json=body)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
    page = login(chromium, url, "reader")
    page.goto(f"{url}/ui/jobs/{job_id}")
    # Remember every progress value htmx swaps in; a reload would lose the marker.
    page.evaluate(
        """() => { window.__sameDocument = true; window.__seen = [];
        document.body.addEventListener('htmx:afterSwap', () => {
          window.__seen.push(Number(document.querySelector('#job-progress').value)); }); }"""
    )
    first = int(page.locator("#job-progress").get_attribute("value"))
    total = int(page.locator("#job-progress").get_attribute("max"))
    assert total == 10_000 and first < total, "the job finished before the page opened"
    page.locator("#live[data-status=succeeded]").wait_for(timeout=WAIT_MS)
    seen = page.evaluate("window.__seen")
    assert page.evaluate("window.__sameDocument") is True
    assert seen and seen == sorted(seen) and seen[-1] == total, seen
    assert page.locator("#job-status").inner_text() == "succeeded"
    assert page.locator("#confusion tbody td").count() == 100
    assert page.locator("#metrics").get_by_text("accuracy", exact=True).count() == 1
    REPORTS.mkdir(exist_ok=True)
    page.screenshot(path=str(REPORTS / "ui-job.png"), full_page=True)
    assert_accessible(page)
    page.context.close()


def test_a_gate_shows_its_checks(chromium, stack) -> None:
    url, model = stack["url"], stack["model"]
    with api_client(url, "operator") as api:
        body = {
            "model_name": model,
            "candidate_version": "v2",
            "baseline_version": "v1",
            "dataset_id": "fashion_mnist_10000",
            "reason": "release candidate",
        }
        r = api.post("/gates", json=body)
        assert r.status_code == 202, r.text
        gate_id = r.json()["gate_id"]
    page = login(chromium, url, "reader")
    page.goto(f"{url}/ui/gates/{gate_id}")
    page.locator("#checks").wait_for(timeout=WAIT_MS)  # the page updates itself to the verdict
    headers = page.locator("#checks thead th").all_inner_texts()
    assert headers == [
        "Check",
        "Baseline",
        "Candidate",
        "Delta",
        "Threshold",
        "p-value",
        "95% interval",
        "Verdict",
    ]
    rows = {
        row.locator("th").inner_text(): row.locator("td").all_inner_texts()
        for row in page.locator("#checks tbody tr").all()
    }
    assert {"accuracy", "latency"} <= set(rows)
    for name, cells in rows.items():
        assert cells[-1] in ("PASS", "FAIL", "INCONCLUSIVE"), (name, cells)
    assert rows["accuracy"][0].endswith("%") and rows["accuracy"][2].endswith("pts")
    assert rows["accuracy"][4], "the accuracy check shows no p-value"
    assert re.fullmatch(r"\[[+-][\d.]+, [+-][\d.]+\] pts", rows["accuracy"][5])
    assert page.locator("#gate-status").inner_text() in ("PASS", "FAIL", "INCONCLUSIVE")
    assert_accessible(page)
    page.context.close()


def test_an_operator_promotes_with_a_reason_and_sees_it_in_the_timeline(chromium, stack) -> None:
    url, model = stack["url"], stack["model"]
    page = login(chromium, url, "operator")
    assert_accessible(page)  # the models page
    page.get_by_label("Search by name").fill(model)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=model, exact=True).click()
    page.wait_for_url(f"{url}/ui/models/{model}")
    assert page.locator("#prod-version").inner_text() == "v1"
    page.get_by_role("link", name="Promote v2").click()
    assert_accessible(page)  # the confirmation form
    page.get_by_label("Reason (recorded in the log)").fill(
        "canary looked fine; promoted from the console"
    )
    page.get_by_label("I confirm: make v2 prod").check()
    page.get_by_role("button", name="Promote v2").click()
    page.wait_for_url(f"{url}/ui/models/{model}")
    assert page.locator("#prod-version").inner_text() == "v2"
    newest = page.locator("#timeline > li").first
    assert "promoted v2 to prod, demoted v1" in newest.inner_text()
    assert "Reason: canary looked fine; promoted from the console" in newest.inner_text()
    assert "olga" in newest.inner_text()
    assert newest.get_by_role("link", name=re.compile("^Trace ")).count() == 1
    assert page.locator("figure.chart svg").count() == 2  # accuracy and p95 across versions
    page.screenshot(path=str(REPORTS / "ui-model.png"), full_page=True)
    assert_accessible(page)
    newest.get_by_role("link", name=re.compile("^Trace ")).click()
    assert "promoted v2 to prod" in page.locator("ol.timeline").inner_text()
    assert_accessible(page)
    page.goto(f"{url}/ui/models/{model}?at=2000-01-01T00:00:00Z")
    assert "did not exist yet" in page.get_by_role("alert").inner_text()
    page.context.close()


def test_a_reader_sees_no_promote_button_and_forged_forms_are_refused(chromium, stack) -> None:
    url, model = stack["url"], stack["model"]
    with api_client(url, "reader") as api:
        prod = api.get(f"/models/{model}").json()["prod_version"]
    other = "v1" if prod == "v2" else "v2"
    promote = f"{url}/ui/models/{model}/versions/{other}/promote"
    form = {"reason": "forged", "confirm": "yes"}
    reader = login(chromium, url, "reader")
    reader.goto(f"{url}/ui/models/{model}")
    assert reader.get_by_role("link", name=re.compile("Promote")).count() == 0
    assert reader.get_by_role("link", name=re.compile("Roll back")).count() == 0
    assert_accessible(reader)
    reader_token = reader.locator("input[name=csrf_token]").first.get_attribute("value")
    operator = login(chromium, url, "operator")
    operator.goto(f"{url}/ui/models/{model}")
    operator_token = operator.locator("input[name=csrf_token]").first.get_attribute("value")
    assert operator_token != reader_token
    second = login(chromium, url, "operator")  # another operator session
    second_token = second.locator("input[name=csrf_token]").first.get_attribute("value")
    assert second_token != operator_token
    # The reader: no token, its own token, a token stolen from an operator's session.
    for token in (None, reader_token, operator_token):
        data = form if token is None else {**form, "csrf_token": token}
        r = reader.context.request.post(promote, form=data, max_redirects=0)
        assert r.status == 403, (token, r.status)
    # An operator's session refuses a form without its own token, or with another session's.
    for token in (None, reader_token, second_token):
        data = form if token is None else {**form, "csrf_token": token}
        r = operator.context.request.post(promote, form=data, max_redirects=0)
        assert r.status == 403 and "CSRF" in r.text(), (token, r.status)
    # A page on another site posting to the console: no cookie (SameSite=Strict), wrong Origin.
    evil = operator.context.new_page()
    evil.set_content(
        f'<form method="post" action="{promote}"><input name="reason" value="forged">'
        f'<input name="confirm" value="yes"><input name="csrf_token" value="{operator_token}">'
        "<button>go</button></form>"
    )
    with evil.expect_navigation() as nav:
        evil.click("button")
    assert nav.value.status in (401, 403)
    with api_client(url, "reader") as api:
        assert api.get(f"/models/{model}").json()["prod_version"] == prod
    for page in (reader, operator, second):
        page.context.close()


def test_the_audit_page_and_the_login_page_are_accessible(chromium, stack) -> None:
    url = stack["url"]
    admin = login(chromium, url, "admin")
    admin.goto(f"{url}/ui/audit")
    admin.get_by_role("button", name="Run the audit now").click()
    admin.locator("#audit-result").get_by_text("ada").wait_for(timeout=WAIT_MS)
    assert "(console)" in admin.locator("#audit-result").inner_text()
    assert_accessible(admin)
    admin.get_by_role("button", name="Log out").click()
    admin.wait_for_url(re.compile(r".*/ui/login$"))
    assert_accessible(admin)
    admin.goto(f"{url}/ui/models")
    assert "/ui/login" in admin.url  # logged out: back to the login form
    admin.context.close()
