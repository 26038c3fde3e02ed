"""Imports only go down the declared layers, and no module imports itself through others.

docs/architecture.md, "Layers": every import of every module of the package (module level,
inside functions, under ``TYPE_CHECKING``) is read with :mod:`ast` and checked against
:data:`LAYERS`. A module no layer names fails too, so a new module is placed on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Import package -> its folder. Every module under these folders is checked.
PACKAGES = {
    "dbos_orchestrator": ROOT / "packages" / "dbos-orchestrator" / "dbos_orchestrator",
    "dbos_airflow": ROOT / "dbos_airflow",
    "prefect_dbos": ROOT / "packages" / "prefect-dbos" / "prefect_dbos",
}
# Bottom first; folders are layers. A module belongs to the layer of the longest prefix naming it.
LAYERS: list[tuple[str, ...]] = [
    # the Airflow-free core (its own distribution), itself in layers
    (
        "dbos_orchestrator.status",
        "dbos_orchestrator.exceptions",
        "dbos_orchestrator.messages",
        "dbos_orchestrator.forms",
        "dbos_orchestrator.retry",
        "dbos_orchestrator.serialization",
        "dbos_orchestrator.tracing",
    ),
    # what the documented client is made of: options, URL rules and libpq parameters, its log line, its
    # error explanations
    (
        "dbos_orchestrator.options",
        "dbos_orchestrator.database_urls",
        "dbos_orchestrator.libpq",
        "dbos_orchestrator.init_log",
    ),
    ("dbos_orchestrator.diagnostics",),
    ("dbos_orchestrator.client",),
    ("dbos_orchestrator.store",),
    ("dbos_orchestrator.waiting",),
    # how an ended workflow (or a batch: waiting's counts) becomes a result or a failure (reads
    # through the store's reader)
    ("dbos_orchestrator.outcome",),
    # queues, schedules, versions, retention and the enqueue check (docs/operations.md)
    ("dbos_orchestrator.operations",),
    # a person's answer to a workflow's question, delivered once (reads through the store's reader)
    ("dbos_orchestrator.approvals",),
    # the service's batch operations (a mixin of the service)
    ("dbos_orchestrator.batches",),
    ("dbos_orchestrator.service",),
    ("dbos_orchestrator",),
    # prefect-dbos, on the core: its block and id rules, what its tasks share, the tasks and flows
    ("prefect_dbos.artifacts",),  # the writer of artifacts queued by tasks (prefect and the core only)
    ("prefect_dbos.ids", "prefect_dbos.database", "prefect_dbos.events"),
    ("prefect_dbos.links", "prefect_dbos.waiting", "prefect_dbos.bridge", "prefect_dbos.streams"),
    ("prefect_dbos.options",),
    ("prefect_dbos.operations",),
    (
        "prefect_dbos.tasks",
        "prefect_dbos.manage",
        "prefect_dbos.jobs",
        "prefect_dbos.cancellation",
        "prefect_dbos.stream_tasks",
        "prefect_dbos.admin",
        "prefect_dbos.approvals",
    ),
    ("prefect_dbos.flows", "prefect_dbos.cli"),
    ("prefect_dbos",),
    # dbos_airflow: its errors (the core's, the task-failing ones Airflow-facing)
    ("dbos_airflow.exceptions",),
    # the Connection turned into a client
    ("dbos_airflow.hooks",),
    # the two-engine contract, one module per rule
    ("dbos_airflow.contract",),
    # what DAG authors use
    ("dbos_airflow.links", "dbos_airflow.triggers", "dbos_airflow.operators", "dbos_airflow.sensors"),
    # the UI
    ("dbos_airflow.plugin",),
    # the package's facade and Airflow's provider discovery
    ("dbos_airflow", "dbos_airflow.get_provider_info"),
]
# Imports inside one layer are refused unless declared here (importer prefix, imported prefix).
SIDEWAYS: set[tuple[str, str]] = {
    ("dbos_orchestrator.messages", "dbos_orchestrator.status"),
    ("dbos_orchestrator.exceptions", "dbos_orchestrator.messages"),
    ("dbos_orchestrator.forms", "dbos_orchestrator.exceptions"),
    ("dbos_orchestrator.retry", "dbos_orchestrator.exceptions"),
    ("dbos_orchestrator.retry", "dbos_orchestrator.status"),
    ("dbos_orchestrator.serialization", "dbos_orchestrator.exceptions"),
    ("dbos_orchestrator.store.bulk", "dbos_orchestrator.store.values"),
    ("dbos_orchestrator.store.bulk", "dbos_orchestrator.store.batch_record"),
    ("dbos_orchestrator.store.bulk", "dbos_orchestrator.store.existing"),
    ("dbos_orchestrator.store.bulk", "dbos_orchestrator.store.bulk_items"),
    ("dbos_orchestrator.store.bulk_items", "dbos_orchestrator.store.existing"),
    ("dbos_orchestrator.store.codec", "dbos_orchestrator.store.superjson"),
    ("dbos_orchestrator.store.steps", "dbos_orchestrator.store.codec"),
    ("dbos_orchestrator.store.values", "dbos_orchestrator.store.codec"),
    ("dbos_orchestrator.store.values", "dbos_orchestrator.store.steps"),
    ("dbos_orchestrator.store.values", "dbos_orchestrator.store.streams"),
    ("dbos_orchestrator.store.streams", "dbos_orchestrator.store.codec"),
    ("dbos_orchestrator.waiting", "dbos_orchestrator.waiting"),
    ("dbos_orchestrator.operations", "dbos_orchestrator.operations.preflight"),
    ("dbos_airflow.hooks.dbos", "dbos_airflow.hooks.connection"),
    ("dbos_airflow.triggers", "dbos_airflow.triggers"),
    ("dbos_airflow.operators", "dbos_airflow.operators"),
    ("dbos_airflow.operators", "dbos_airflow.links"),
    ("dbos_airflow.operators.lifecycle", "dbos_airflow.triggers.dbos"),
    ("dbos_airflow.operators.batch", "dbos_airflow.triggers.dbos"),
    ("dbos_airflow.sensors", "dbos_airflow.operators.batch"),
    ("dbos_airflow.operators.hitl", "dbos_airflow.triggers.dbos"),
    ("dbos_airflow.sensors", "dbos_airflow.links"),
    ("dbos_airflow.sensors", "dbos_airflow.operators.base"),
    ("dbos_airflow.sensors", "dbos_airflow.triggers.dbos"),
    ("dbos_airflow.sensors", "dbos_airflow.triggers.streams"),
    ("dbos_airflow.sensors.streams", "dbos_airflow.sensors.dbos"),
    ("dbos_airflow.sensors", "dbos_airflow.operators.streams"),
    ("dbos_airflow.operators.lifecycle", "dbos_airflow.triggers.streams"),
    ("dbos_airflow.plugin", "dbos_airflow.plugin"),
    ("dbos_airflow.get_provider_info", "dbos_airflow"),
}
# Upward imports that exist today; the list only shrinks.
KNOWN_UPWARD: set[tuple[str, str]] = set()
KNOWN_CYCLES = 0
# The task-failing errors subclass AirflowException when Airflow is installed (optional import).
KNOWN_FORBIDDEN: set[tuple[str, str]] = set()
# Packages that must not import these top-level packages at all (not even lazily).
FORBIDDEN = {
    "dbos_orchestrator": ("airflow", "prefect", "dbos_airflow", "prefect_dbos"),
    "dbos_airflow": ("prefect", "prefect_dbos"),
    "prefect_dbos": ("airflow", "dbos_airflow"),
}


def module_name(package: str, folder: Path, path: Path) -> str:
    parts = [package, *path.relative_to(folder).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {
        module_name(pkg, folder, path): path
        for pkg, folder in PACKAGES.items()
        for path in sorted(folder.rglob("*.py"))
    }


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """Every module ``path`` imports (anywhere in it), as ``(module, line)``; submodules resolved."""
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*here, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((sub if sub in known else base, node.lineno))
    return out


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            # A package's own name (``dbos_airflow``) names its __init__ only, not everything under it.
            inside = "." in prefix and module.startswith(prefix + ".")
            if (module == prefix or inside) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {
        name: {dep for dep, _ in imports_of(name, path, known) if dep in known and dep != name}
        for name, path in mods.items()
    }


def violations() -> list[str]:
    """Upward and undeclared sideways imports, as ``importer:line -> imported``."""
    mods = modules()
    known = set(mods)
    found = []
    for name, path in mods.items():
        mine = layer_of(name)
        if mine is None:
            found.append(f"{name}: in no layer")
            continue
        for dep, line in imports_of(name, path, known):
            top = dep.split(".")[0]
            if top in FORBIDDEN.get(name.split(".")[0], ()) and (name, dep) not in KNOWN_FORBIDDEN:
                found.append(f"{name}:{line} -> {dep} ({name.split('.')[0]} must not import {top})")
            if dep not in known or dep == name:
                continue
            theirs = layer_of(dep)
            assert theirs is not None, dep
            if (name, dep) in KNOWN_UPWARD:
                continue
            if theirs > mine:
                found.append(f"{name}:{line} -> {dep} (upward: layer {mine} -> {theirs})")
            elif theirs == mine and not any(_matches(name, a) and _matches(dep, b) for a, b in SIDEWAYS):
                found.append(f"{name}:{line} -> {dep} (sideways in layer {mine}, not declared)")
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_imports_only_go_down() -> None:
    assert sorted(set(violations())) == []


def test_known_upward_imports_still_exist() -> None:
    """An entry of KNOWN_UPWARD that is gone must be deleted (the list only shrinks)."""
    edges = graph()
    assert [pair for pair in KNOWN_UPWARD if pair[1] not in edges.get(pair[0], set())] == []


def test_import_cycles() -> None:
    assert len(cycles(graph())) == KNOWN_CYCLES, cycles(graph())


@pytest.mark.parametrize(
    ("importer", "imported", "expected"),
    [
        ("dbos_orchestrator.status", "dbos_airflow.hooks.dbos", "upward"),
        ("dbos_airflow.hooks.dbos", "dbos_airflow.operators.dbos", "upward"),
        ("dbos_airflow.hooks.dbos", "airflow.sdk", ""),
        ("dbos_airflow.operators.dbos", "dbos_orchestrator.client", ""),
    ],
)
def test_layer_rule_itself(importer: str, imported: str, expected: str) -> None:
    """The checker refuses an upward import (and lets a downward or third-party one pass)."""
    theirs, mine = layer_of(imported), layer_of(importer)
    assert mine is not None
    assert ("upward" if theirs is not None and theirs > mine else "") == expected


def test_no_module_is_an_alias_or_a_re_export() -> None:
    """One obvious place per name: no module stands in for another (replacing itself in ``sys.modules``),
    star-imports a neighbour or lists names it only imports in ``__all__`` (docs/architecture.md, "Layers")."""
    found = []
    for name, path in modules().items():
        if name in PACKAGES:  # a distribution's public facade names what it offers
            continue
        tree = ast.parse(path.read_text())
        imported = {
            alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom) for alias in node.names
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names):
                found.append(f"{name}:{node.lineno} star import")
            if (
                isinstance(node, ast.Subscript) and ast.unparse(node) == "sys.modules[" + "__name__]"
            ):  # split: the repository greps for it
                found.append(f"{name}:{node.lineno} replaces itself in sys.modules")
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(ast.unparse(t) == "__all__" for t in node.targets):
                listed = {e.value for e in getattr(node.value, "elts", []) if isinstance(e, ast.Constant)}
                found += [f"{name}: re-exports {n}" for n in sorted(listed & imported)]
    assert found == []


def test_the_core_imports_no_orchestrator() -> None:
    """docs/architecture.md, "Layers": installing and importing the core pulls neither Airflow nor Prefect."""
    import subprocess
    import sys

    names = sorted(m for m in modules() if m.startswith("dbos_orchestrator"))
    code = (
        f"import importlib, sys\nfor m in {names!r}: importlib.import_module(m)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'airflow', 'prefect', 'dbos_airflow'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]", out.stderr


def test_the_facade_names_the_defining_modules() -> None:
    """``from dbos_airflow import X`` resolves lazily to the module that defines X (no re-export in between)."""
    import importlib

    import dbos_airflow

    wrong = []
    for name, module in dbos_airflow._PUBLIC.items():
        obj = getattr(importlib.import_module(module), name, None)
        if obj is None or getattr(obj, "__module__", module) != module:
            wrong.append(f"{name}: {module}")
        assert getattr(dbos_airflow, name) is obj
    assert wrong == []
