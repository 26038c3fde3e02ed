"""prefect-dbos declares what CI installs: its floors are the pins of its own constraints file
(packages/prefect-dbos/README.md, "Install")."""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import entry_points, version
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PACKAGE = Path(__file__).resolve().parent.parent
FLOOR_IS_THE_PIN = ("prefect", "dbos")
LOCAL = ("dbos-orchestrator",)  # the shared core, installed from the checkout at this package's version


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    return dict(tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"])


@pytest.fixture(scope="module")
def pins() -> dict[str, Version]:
    out = {}
    for line in (PACKAGE / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            assert pinned, f"constraints.txt: {line!r} is not a name==version pin"
            out[canonicalize_name(name)] = Version(pinned)
    return out


def _requirements(project: dict[str, Any]) -> list[Requirement]:
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs.extend(Requirement(r) for r in extra)
    return reqs


def test_every_requirement_is_pinned_and_its_floor_is_the_pin(
    project: dict[str, Any], pins: dict[str, Version]
) -> None:
    for req in _requirements(project):
        name = canonicalize_name(req.name)
        if name in LOCAL:
            assert str(req.specifier) == f"=={project['version']}", f"{req}: the core is released in lockstep"
            continue
        assert name in pins, f"{req} is not pinned in packages/prefect-dbos/constraints.txt"
        floors = [Version(s.version) for s in req.specifier if s.operator in (">=", "==")]
        assert floors == [pins[name]], f"pyproject declares {req} but constraints.txt pins {name}=={pins[name]}"


def _needed(project: dict[str, Any]) -> set[str]:
    """Every distribution the package and its test extra need, transitively (installed metadata)."""
    from importlib.metadata import PackageNotFoundError, distribution

    todo, seen = _requirements(project), set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if (name, frozenset(req.extras)) in seen:
            continue
        seen.add((name, frozenset(req.extras)))
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            continue  # an unmet marker's requirement (another Python, another platform)
        for text in dist.requires or []:
            dep = Requirement(text)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in (*req.extras, "")):
                todo.append(dep)
    return {name for name, _ in seen}


def test_every_pin_is_needed(project: dict[str, Any], pins: dict[str, Version]) -> None:
    """A requirement dropped from pyproject takes its pins along (testcontainers was one: nothing used it)."""
    unneeded = sorted(set(pins) - _needed(project))
    assert not unneeded, f"packages/prefect-dbos/constraints.txt pins what nothing requires: {unneeded}"


@pytest.mark.parametrize("name", FLOOR_IS_THE_PIN)
def test_the_venv_has_the_pinned_engines(pins: dict[str, Version], name: str) -> None:
    assert Version(version(name)) == pins[name]


def test_constraints_name_no_local_package(pins: dict[str, Version]) -> None:
    assert not {"prefect-dbos", "dbos-airflow", "dbos-orchestrator"} & set(pins)


def test_dbos_is_capped_below_its_next_minor(project: dict[str, Any]) -> None:
    """The core reads dbos' own system-database tables: a new minor is untested."""
    [dbos] = [r for r in _requirements(project) if canonicalize_name(r.name) == "dbos"]
    assert not dbos.specifier.contains("3.5.0")


def test_entry_point_and_py_typed() -> None:
    [ep] = [e for e in entry_points(group="prefect.collections") if e.name == "prefect_dbos"]
    assert ep.value == "prefect_dbos"
    assert (PACKAGE / "prefect_dbos" / "py.typed").exists()


def test_importing_the_package_never_imports_airflow() -> None:
    import prefect_dbos  # noqa: F401

    assert "airflow" not in sys.modules and "dbos_airflow" not in sys.modules

    assert version("dbos-orchestrator") == version("prefect-dbos")
