"""Artifact paths that no file can have are a 400, never a 500 (found by schemathesis)."""

from __future__ import annotations

import pytest

from domain.errors import InvalidInput
from storage.registry.artifacts import LocalArtifactStore


@pytest.mark.parametrize("source", ["~3\udad0\udcf5x", "/tmp/\udcff.pt", "~\udb30user/model.pt"])
def test_lone_surrogates_are_invalid_input(tmp_path, source) -> None:
    store = LocalArtifactStore(tmp_path / "store", (tmp_path,), 1 << 20)
    with pytest.raises(InvalidInput, match="artifact path"):
        store.resolve_source(source)
