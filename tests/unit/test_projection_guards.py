"""Migration 0010's guards read event payloads in SQL: the fields they name must stay the events'.

A renamed field, or a new schema version whose stored payloads an upcaster reshapes, would make
the guards refuse the projection rows the platform writes: change the guards' SQL with them.
"""

from __future__ import annotations

import importlib.util
import re

import msgspec

from events.keys import ApiKeyCreated, ApiKeyRevoked
from events.registry import (
    ModelVersionDemoted,
    ModelVersionPromoted,
    ModelVersionRegistered,
    ModelVersionRolledBack,
)
from tests.conftest import ROOT

MIGRATION = ROOT / "migrations" / "versions" / "20261205_0010_projection_guards.py"
READ = {
    ApiKeyCreated: {"role", "key_hash"},
    ApiKeyRevoked: set(),
    ModelVersionPromoted: {"model_version"},
    ModelVersionRolledBack: {"to_version"},
    ModelVersionDemoted: set(),
    ModelVersionRegistered: {"model_version", "artifact_uri", "sha256", "size_bytes"},
}


def _sql() -> str:
    spec = importlib.util.spec_from_file_location("guards", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FUNCTIONS + module.TRIGGERS + "".join(module.INDEXES)


def test_the_guards_read_fields_the_events_have_in_their_first_schema() -> None:
    sql = _sql()
    for event, fields in READ.items():
        assert f"'{event.__name__}'" in sql, event.__name__
        assert event.schema_version == 1, f"{event.__name__}: update migration 0010's guards"
        names = {f.encode_name for f in msgspec.structs.fields(event)}
        assert fields <= names, event.__name__
    named = set(re.findall(r"->>'(\w+)'", sql)) | set(re.findall(r"'(\w+)', NEW\.", sql))
    assert named == set().union(*READ.values())


def test_the_guards_use_the_stream_prefixes_of_the_events() -> None:
    from events.keys import KEY_STREAM_PREFIX
    from events.streams import MODEL_STREAM_PREFIX

    sql = _sql()
    assert f"'{KEY_STREAM_PREFIX}' || NEW.key_name" in sql
    assert f"'{MODEL_STREAM_PREFIX}' || NEW.model_name" in sql
