"""The README's configuration table is the one the settings render (`just settings-table`)."""

from __future__ import annotations

from dataclasses import fields

from settings import Settings, groups, variables
from settings.table import between_markers, markdown_table
from tests.conftest import ROOT


def test_the_readme_table_is_generated_from_the_settings() -> None:
    written = between_markers((ROOT / "README.md").read_text())
    assert written == "\n" + markdown_table() + "\n", "run `just settings-table`"


def test_every_field_names_its_variable_default_and_meaning() -> None:
    names = [f.metadata["env"] for group in groups().values() for f in fields(group)]
    assert len(names) == len(set(names)) == len(variables()) > 50
    for group in groups().values():
        for f in fields(group):
            assert f.metadata["env"].isupper(), f.name
            assert f.metadata["default"] and f.metadata["doc"].endswith("."), f.name
    assert set(groups()) == {f.name for f in fields(Settings)}


def test_the_table_has_a_row_per_variable() -> None:
    table = markdown_table()
    assert all(f"| `{name}` |" in table for name in variables())
    assert table.count("\n| `") == len(variables())
