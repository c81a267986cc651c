"""The layering rules of docs/architecture.md, checked on the source with ast (nothing imported)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 300
ENTRYPOINTS = ("api", "consumers", "cli")
DRIVERS = {"sqlalchemy", "redis", "torch", "torchvision", "asyncpg", "litestar", "alembic"}
PROJECT = {"api", "bootstrap", "cli", "consumers", "domain", "events", "ml", "migrations"}
PROJECT |= {"observability", "settings", "storage", "bench", "ops", "tests"}
SKIP_DIRS = {"tests", "__pycache__", "build", "node_modules", "artifacts", "data"}


def imported_modules(source: str, module: str = "") -> set[str]:
    """Every module a source imports, in any form: top level or nested, plain, from, relative,
    or by name through importlib.import_module / __import__."""
    found: set[str] = set()
    package = module.rsplit(".", 1)[0] if "." in module else ""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                parts = package.split(".") if package else []
                anchor = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0]
            by_name = name in ("import_module", "__import__") and isinstance(arg, ast.Constant)
            if by_name and isinstance(arg.value, str):
                found.add(arg.value)
    return {m for m in found if m}


def tops(modules: set[str]) -> set[str]:
    """The top-level package of each module name."""
    return {m.split(".")[0] for m in modules}


def python_files(*folders: str) -> list[Path]:
    """The project's .py files (of some top-level folders, or all of them) outside tests."""
    roots = [ROOT / f for f in folders] if folders else [ROOT]
    files = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(ROOT).parts[:-1]
            if any(p in SKIP_DIRS or p.startswith(".") or p.endswith(".egg-info") for p in parts):
                continue
            files.append(path)
    return files


def module_name(path: Path) -> str:
    """Dotted module name of a project file."""
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imports_of(path: Path) -> set[str]:
    """Modules a project file imports."""
    return imported_modules(path.read_text(encoding="utf-8"), module_name(path))


def violations(folders: tuple[str, ...], allowed) -> list[str]:
    """'<file>: <module>' for every import in ``folders`` that ``allowed`` refuses."""
    bad = []
    for path in python_files(*folders):
        refused = {name for name in imports_of(path) if not allowed(name)}
        # Name each module once: 'storage.embedded', not also 'storage.embedded.stop_all'.
        shortest = {n for n in refused if not any(n.startswith(f"{o}.") for o in refused)}
        bad += [f"{path.relative_to(ROOT)}: {name}" for name in sorted(shortest)]
    return bad


def test_the_checker_sees_every_import_form() -> None:
    source = (
        "import storage.streams.relay\nfrom storage import tables\nfrom . import sibling\n"
        "def f():\n    from storage.embedded import stop_all\n"
        "    import importlib\n    importlib.import_module('storage.registry.artifacts')\n"
        "    __import__('redis')\n"
    )
    found = imported_modules(source, "cli.main")
    assert {
        "storage.streams.relay",
        "storage.tables",
        "storage.embedded",
        "storage.registry.artifacts",
    } <= found
    assert {"cli.sibling", "redis"} <= found
    assert "storage" in tops(found)


def test_the_layers_exist_where_the_rules_look() -> None:
    for folder in (*ENTRYPOINTS, "domain", "events", "storage", "ml", "observability"):
        assert python_files(folder), f"{folder}/ has no modules: the rules below check nothing"
    assert (ROOT / "bootstrap.py").is_file()


@pytest.mark.parametrize("folder", ENTRYPOINTS)
def test_entrypoints_never_import_storage(folder: str) -> None:
    """They get adapters from the composition root (bootstrap.py), never build them."""
    bad = violations((folder,), lambda name: name.split(".")[0] != "storage")
    assert bad == [], "entrypoints import storage/:\n" + "\n".join(bad)


def test_domain_imports_no_driver_or_framework() -> None:
    bad = violations(("domain",), lambda name: name.split(".")[0] not in DRIVERS)
    assert bad == [], "domain/ imports I/O libraries:\n" + "\n".join(bad)


def test_domain_imports_no_adapter_or_entrypoint() -> None:
    outer = PROJECT - {"domain", "events"}
    bad = violations(("domain",), lambda name: name.split(".")[0] not in outer)
    assert bad == [], "domain/ imports outer layers:\n" + "\n".join(bad)


def test_events_import_only_the_standard_library_and_msgspec() -> None:
    def allowed(name: str) -> bool:
        top = name.split(".")[0]
        return top in sys.stdlib_module_names or top in {"msgspec", "events"}

    bad = violations(("events",), allowed)
    assert bad == [], "events/ imports beyond stdlib and msgspec:\n" + "\n".join(bad)


def test_adapters_never_import_entrypoints_or_the_composition_root() -> None:
    outer = {"api", "consumers", "cli", "bootstrap"}
    bad = violations(("storage", "ml"), lambda name: name.split(".")[0] not in outer)
    assert bad == [], "adapters import entrypoints:\n" + "\n".join(bad)


def test_observability_imports_nothing_of_the_project() -> None:
    own = PROJECT - {"observability"}
    bad = violations(("observability",), lambda name: name.split(".")[0] not in own)
    assert bad == [], "observability/ imports the project:\n" + "\n".join(bad)


def test_every_module_outside_tests_has_at_most_300_lines() -> None:
    files = python_files()
    assert len(files) > 50  # the walk found the project
    counts = {p: len(p.read_text(encoding="utf-8").splitlines()) for p in files}
    long = [f"{p.relative_to(ROOT)}: {n}" for p, n in counts.items() if n > MAX_LINES]
    assert long == [], f"modules over {MAX_LINES} lines:\n" + "\n".join(long)
