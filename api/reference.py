"""``python -m api.reference``: the endpoint reference (docs/api.md) from the app's own routes.

One table (method, path, role, what it does, its OpenAPI entry) generated from the routes, the
role each one's access check asks for and the OpenAPI document, so it cannot drift from the
code: ``just api-reference`` rewrites it, and a unit test fails when it is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from litestar import Litestar

START, END = "<!-- api-reference:start -->", "<!-- api-reference:end -->"
METHODS = ("get", "head", "post", "put", "patch", "delete")
REDOC = "http://localhost:8000/schema/redoc#operation/"  # Litestar serves ReDoc under /schema


def openapi_document(app: Litestar) -> dict[str, Any]:
    """The app's completed OpenAPI document, as served at /schema/openapi.json."""
    from litestar._openapi.plugin import OpenAPIPlugin

    from api.openapi import document

    document(app)
    return app.plugins.get(OpenAPIPlugin).provide_openapi_schema()


def _what(op: dict[str, Any]) -> str:
    text = op.get("summary") or (op.get("description") or "").strip().split("\n")[0]
    return text.rstrip(".").replace("|", "\\|")


def markdown_table(app: Litestar) -> str:
    """Every documented operation, by path then method, with the role its access check needs."""
    from api.openapi import route_roles

    doc, roles = openapi_document(app), route_roles(app)
    lines = ["| Method | Path | Role | What it does | OpenAPI |", "|---|---|---|---|---|"]
    for path in sorted(doc["paths"]):
        item = doc["paths"][path]
        for method in METHODS:
            op = item.get(method)
            if op is None or (method == "head" and "get" in item):
                continue  # HEAD mirrors GET
            role = roles.get((method, path), "?")
            link = f"[{op['operationId']}]({REDOC}{op['operationId']})"
            lines.append(f"| `{method.upper()}` | `{path}` | {role} | {_what(op)} | {link} |")
    return "\n".join(lines) + "\n"


def write_reference(path: Path, table: str) -> bool:
    """Replace what is between the markers in ``path`` with ``table``; whether it changed."""
    text = path.read_text()
    head, _, rest = text.partition(START)
    _, found, tail = rest.partition(END)
    if not found:
        raise SystemExit(f"{path}: the markers {START} ... {END} are missing")
    new = f"{head}{START}\n{table}{END}{tail}"
    path.write_text(new)
    return new != text


def build_app() -> Litestar:
    """The app as `python -m api` builds it, without connecting to anything."""
    from api.app import create_app

    return create_app()


def main() -> int:
    """Print the table, or rewrite it in FILE (--write)."""
    p = argparse.ArgumentParser(prog="python -m api.reference", description=__doc__)
    p.add_argument("--write", type=Path, metavar="FILE", help="replace the table in FILE")
    args = p.parse_args()
    table = markdown_table(build_app())
    if args.write:
        changed = write_reference(args.write, table)
        print(f"{args.write}: {'reference updated' if changed else 'reference already current'}")
    else:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
