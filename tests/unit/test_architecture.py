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
    assert (ROOT / "bootstrap" / "__init__.py").is_file()


@pytest.mark.parametrize("folder", ENTRYPOINTS)
def test_entrypoints_never_import_storage(folder: str) -> None:
    """They get adapters from the composition root (bootstrap/), never build them."""
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


# --- Packages per bounded context, and no cycles -------------------------------------------

CONTEXTS = {"registry", "jobs", "gates", "audit", "keys"}  # each has a package in both layers
# Modules of the domain that compute statistics may use numpy (docs/architecture.md).
STATISTICS = {
    "domain.jobs.evaluation",
    "domain.gates.stats",
    "domain.gates.noninferiority",
    "domain.gates.verdict",
}
# The composition root, settings itself, and tools that compose their own processes.
SETTINGS_READERS = {"bootstrap", "settings", "bench", "migrations"}


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a package's __init__ counts as the package)."""
    modules = {module_name(p).removesuffix(".__init__"): p for p in python_files()}

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in modules.items():
        targets = {resolve(n) for n in imports_of(path)}
        graph[module] = {t for t in targets if t and t != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_in_a_cycle() -> None:
    """Lazy and TYPE_CHECKING imports count too: a cycle hidden in a function is still one."""
    found = cycles(import_graph())
    assert found == [], "modules importing each other:\n" + "\n".join(map(" <-> ".join, found))


def context_packages(layer: str) -> set[str]:
    """The sub-packages of a layer (folders with an __init__.py)."""
    return {p.parent.name for p in (ROOT / layer).glob("*/__init__.py")}


@pytest.mark.parametrize("layer", ["domain", "storage"])
def test_each_layer_has_a_package_per_context(layer: str) -> None:
    packages = context_packages(layer)
    assert len(packages) >= 5
    assert packages >= CONTEXTS, f"{layer}/ lacks {sorted(CONTEXTS - packages)}"


@pytest.mark.parametrize("layer", ["domain", "storage"])
def test_no_flat_family_of_modules(layer: str) -> None:
    """Modules sharing a name prefix (gate_*, audit_*) belong in a package of their own."""
    stems = [p.stem for p in (ROOT / layer).glob("*.py") if p.stem != "__init__"]
    prefixes = [s.split("_")[0] for s in stems]
    families = sorted({p for p in prefixes if prefixes.count(p) > 1})
    families += sorted(s for s in stems if s in context_packages(layer))
    assert families == [], f"{layer}/ keeps flat families: {families}"


@pytest.mark.parametrize("layer", ["domain", "storage"])
def test_context_packages_depend_on_each_other_without_cycles(layer: str) -> None:
    graph = import_graph()
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        parts = module.split(".")
        if parts[0] != layer or len(parts) < 3:
            continue
        for target in targets:
            other = target.split(".")
            if other[0] == layer and len(other) >= 3 and other[1] != parts[1]:
                packages.setdefault(parts[1], set()).add(other[1])
    found = cycles({p: packages.get(p, set()) for p in context_packages(layer)})
    assert found == [], f"{layer}/ packages in a cycle: {found}"


def test_numpy_only_in_the_domains_statistics() -> None:
    bad = [
        f"{module_name(p)}"
        for p in python_files("domain")
        if "numpy" in tops(imports_of(p)) and module_name(p) not in STATISTICS
    ]
    assert bad == [], "numpy outside the domain's statistics modules:\n" + "\n".join(bad)


def test_settings_are_read_only_through_the_composition_root() -> None:
    """Entrypoints and adapters get their settings from bootstrap, never from the environment."""
    bad = [
        str(p.relative_to(ROOT))
        for p in python_files()
        if "settings" in tops(imports_of(p))
        and module_name(p).split(".")[0] not in SETTINGS_READERS
    ]
    assert bad == [], "modules importing settings outside the composition root:\n" + "\n".join(bad)


def test_no_line_is_packed_past_the_formatter() -> None:
    """Modules are split when they grow, never packed with `# fmt: skip` / `# fmt: off`."""
    marker = "# fmt: " + "skip"  # spelled apart so this file does not match itself
    packed = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in python_files()
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if marker in line or "# fmt: " + "off" in line
    ]
    assert packed == [], "lines packed past the formatter:\n" + "\n".join(packed)
