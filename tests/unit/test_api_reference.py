"""docs/api.md's endpoint table is the one the app's routes generate (`just api-reference`)."""

from __future__ import annotations

from api.reference import END, START, build_app, markdown_table
from tests.conftest import ROOT


def test_the_endpoint_reference_matches_the_routes() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    written = text.split(START, 1)[1].split(END, 1)[0].lstrip("\n")
    table = markdown_table(build_app())
    assert written == table, "docs/api.md is stale: run `just api-reference`"
    # Every path the app documents is there, each with a role the access check knows.
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    assert {"public", "reader", "predictor", "operator", "admin"} >= {r[2] for r in rows}
    assert any(r[1] == "`/predict`" and r[2] == "predictor" for r in rows)
    assert any(r[1] == "`/keys`" and r[2] == "admin" for r in rows)
