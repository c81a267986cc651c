"""The configuration table of README.md, rendered from the settings' own fields."""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path

from settings import groups

START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def markdown_table() -> str:
    """One table per group: variable, default, what it does (one line each)."""
    lines: list[str] = []
    for name, group in groups().items():
        title = (inspect.getdoc(group) or "").splitlines()[0]
        lines += [f"**{name}**: {title}", "", "| variable | default | what it does |"]
        lines.append("|---|---|---|")
        for f in fields(group):
            doc = f.metadata["doc"].replace("|", "\\|")
            lines.append(f"| `{f.metadata['env']}` | {f.metadata['default']} | {doc} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def between_markers(text: str) -> str:
    """The part of ``text`` between the table's two marker lines."""
    _, start, rest = text.partition(START + "\n")
    body, end, _ = rest.partition(END)
    if not (start and end):
        raise ValueError(f"the markers {START} and {END} are missing")
    return body


def write_table(path: Path) -> bool:
    """Replace what is between the markers in ``path`` with the table; whether it changed."""
    text = path.read_text()
    old = between_markers(text)
    new = "\n" + markdown_table() + "\n"
    if old == new:
        return False
    head, _, rest = text.partition(START + "\n")
    _, _, tail = rest.partition(END)
    path.write_text(head + START + "\n" + new + END + tail)
    return True
