"""Browser fixtures: the API and a worker as real processes, Debian's Chromium driven by Playwright.

Playwright never downloads a browser here: it launches the system Chromium (``just setup``
installs the Debian package). Without it, or without the playwright package, the browser tests
skip and say why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cli.processes import free_port, stop_process
from tests.conftest import ROOT

KEYS = {
    "operator": ("olga", "operator-browser-key-0123456789"),
    "reader": ("rita", "reader-browser-key-0123456789"),
    "admin": ("ada", "admin-browser-key-0123456789"),
}
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
REPORTS = ROOT / "reports"


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with code {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API did not answer /health within {timeout_s:.0f}s")


@pytest.fixture(scope="module")
def chromium():
    """Playwright's Chromium type pointed at the system browser, or a skip that says why."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(
            f"Chromium is not installed at {CHROMIUM}: `just setup` installs Debian's package "
            "(as root where apt works), or `sudo apt-get install chromium`"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is missing: ./dev installs the dev extra")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def stack(server_urls, trained_artifacts, tmp_path_factory):
    """``python -m api`` (one key per role) and ``python -m consumers`` on the test servers, and
    a model with two trained versions, v1 prod. Yields the base URL and the model name."""
    port = free_port()
    keys = ",".join(f"{name}:{secret}:{role}" for role, (name, secret) in KEYS.items())
    artifacts = tmp_path_factory.mktemp("console-artifacts")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": server_urls["database_url"],
        "REDIS_URL": server_urls["redis_url"],
        "ARTIFACTS_DIR": str(artifacts),
        "ARTIFACT_IMPORT_ROOTS": str(trained_artifacts["v1"].parents[1]),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "API_WORKERS": "1",  # one process: the console's pages, not the spreading, are tested
        "API_KEYS": keys,
        "RATE_LIMIT_PER_S": "0",
        "WARM_UP": "0",
        "TORCH_THREADS": "1",
        "GATE_LATENCY_ROUNDS": "10",
        "LOG_LEVEL": "warning",
    }
    api = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env)
    worker = subprocess.Popen([sys.executable, "-m", "consumers"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, api)
        model = f"console-{port}"
        with api_client(url, "operator") as c:
            for version in ("v1", "v2"):
                body = {"model_version": version, "artifact_path": str(trained_artifacts[version])}
                r = c.post(f"/models/{model}/versions", json=body)
                assert r.status_code == 201, r.text
            r = c.post(f"/models/{model}/versions/v1/promote", json={"reason": "first release"})
            assert r.status_code == 200, r.text
        yield {"url": url, "model": model}
    finally:
        for proc in (worker, api):
            stop_process(proc)


def api_client(url: str, role: str) -> httpx.Client:
    """An HTTP client of the API with the key of ``role``."""
    return httpx.Client(base_url=url, headers={"x-api-key": KEYS[role][1]}, timeout=30)


def login(browser, url: str, role: str):
    """A fresh browser context (its own cookies) logged in with the key of ``role``; the page."""
    # bypass_csp only lets the test inject axe-core; the app's own pages run under its CSP.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.goto(f"{url}/ui/login")
    page.get_by_label("API key").fill(KEYS[role][1])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{url}/ui/models")
    return page


def assert_accessible(page) -> None:
    """axe-core on the page: no serious or critical violation, and headings in order."""
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    headings = {"page-has-heading-one", "heading-order", "empty-heading"}
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical") or v["id"] in headings
    ]
    assert bad == [], f"accessibility violations on {page.url}:\n" + "\n".join(bad)
