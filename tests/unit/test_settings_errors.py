"""A variable that cannot be read stops every entrypoint with one line naming it, no trace."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

CASES = [
    (["api"], {"API_KEYS": "alice:short:admin"}, "API_KEYS must look like"),
    (["api"], {"API_WORKERS": "many"}, "API_WORKERS must be a whole number, not 'many'"),
    (["consumers"], {"MAX_DELIVERIES": "z"}, "MAX_DELIVERIES must be a whole number"),
    (["api"], {"INFERENCE_GRAPH": "fast"}, "INFERENCE_GRAPH must be one of auto, frozen, eager"),
    (["cli", "list"], {"RELAY_INTERVAL_S": "soon"}, "RELAY_INTERVAL_S must be a number"),
]


@pytest.mark.parametrize(("module", "env", "message"), CASES)
def test_a_bad_variable_is_one_line_and_exit_2(module, env, message, tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *module],
        cwd=ROOT,
        env={**os.environ, "STATE_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().startswith("error: "), result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
