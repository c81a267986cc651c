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
