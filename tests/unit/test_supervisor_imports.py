"""The API's supervisor serves nothing, so it must not pay for what serving imports."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

# What only the serving processes need: each costs the supervisor memory it never uses.
SERVING_ONLY = ("torch", "numpy", "litestar", "uvicorn", "sqlalchemy", "redis", "api.app")


def test_the_supervisors_modules_import_neither_torch_nor_the_app() -> None:
    """What ``python -m api`` imports before it decides to supervise (api.__main__)."""
    code = (
        "import json, sys, api.__main__, api.supervisor; "
        f"print(json.dumps([m for m in {SERVING_ONLY!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == [], result.stdout


def test_a_serving_process_goes_without_rich() -> None:
    """structlog would import rich and pygments (4 MB a process) for tracebacks the API never
    prints: ``python -m api`` blocks them before anything imports structlog, and the app works."""
    code = """
import json, sys, types
def serve(settings, reuse_port):
    import api.app, structlog
    structlog.get_logger("t").info("logged")
    print(json.dumps({m: sys.modules.get(m) is not None for m in ("rich", "pygments")}))
sys.modules["api.server"] = types.SimpleNamespace(serve=serve)
import api.__main__, api.supervisor
api.__main__.main([api.supervisor.CHILD_FLAG])
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.splitlines()[-1]) == {"rich": False, "pygments": False}
