"""docs/asyncapi.json is the document the code generates: a new event type updates both."""

from __future__ import annotations

from events.asyncapi import document_json
from tests.conftest import ROOT


def test_the_committed_document_is_the_generated_one() -> None:
    committed = (ROOT / "docs" / "asyncapi.json").read_bytes()
    assert committed == document_json(), "run `just asyncapi` and commit docs/asyncapi.json"
