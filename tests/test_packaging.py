"""pyproject.toml declares what CI tests: its floors are the versions constraints.txt pins.

CI installs the project with ``pip install -c constraints.txt`` on one Python, so a floor below a
pin is a version nobody ran (Airflow 3.2 is one: see README "Install"). These checks make the two
files move together.
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from typing import Any

import pytest
import tomllib
from conftest import ROOT
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

# Their floor must be exactly the pinned version: the engines the provider's behaviour depends on.
FLOOR_IS_THE_PIN = ("apache-airflow", "dbos", "apache-airflow-providers-celery")


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"])


@pytest.fixture(scope="module")
def pins() -> dict[str, Version]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
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


def _floor(spec: SpecifierSet) -> Version:
    floors = [Version(s.version) for s in spec if s.operator in (">=", "==", "~=")]
    assert len(floors) == 1, f"{spec}: expected exactly one lower bound"
    return floors[0]


def test_every_requirement_is_pinned_and_the_pin_satisfies_it(
    project: dict[str, Any], pins: dict[str, Version]
) -> None:
    for req in _requirements(project):
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside {req}"
        )


@pytest.mark.parametrize("name", FLOOR_IS_THE_PIN)
def test_floor_is_the_version_ci_installs(project: dict[str, Any], pins: dict[str, Version], name: str) -> None:
    [req] = {str(r): r for r in _requirements(project) if canonicalize_name(r.name) == name}.values()
    assert _floor(req.specifier) == pins[name], (
        f"pyproject.toml declares {req} but CI installs {name}=={pins[name]} (constraints.txt): "
        "raise the floor to the pin, or add a CI job that installs the floor"
    )
    # And the venv running this test was installed from those pins.
    assert Version(version(name)) == pins[name]


def test_dbos_is_capped_below_its_next_minor(project: dict[str, Any], pins: dict[str, Version]) -> None:
    """The provider reads dbos' own system-database tables (dbos._schemas): a new minor is untested."""
    [dbos] = [r for r in _requirements(project) if canonicalize_name(r.name) == "dbos"]
    pin = pins["dbos"]
    assert not dbos.specifier.contains(Version(f"{pin.major}.{pin.minor + 1}.0")), dbos


def test_requires_python_is_the_python_ci_runs(project: dict[str, Any]) -> None:
    running = Version(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert _floor(SpecifierSet(project["requires-python"])) == running
    classifiers = [c for c in project["classifiers"] if c.startswith("Programming Language :: Python :: 3.")]
    assert classifiers == [f"Programming Language :: Python :: {running}"]


def test_license_is_an_spdx_string_that_the_build_backend_understands() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"  # the table form prints a deprecation banner
    [setuptools] = [Requirement(r) for r in pyproject["build-system"]["requires"] if r.startswith("setuptools")]
    assert _floor(setuptools.specifier) >= Version("77")  # PEP 639 license expressions


def test_readme_states_the_declared_versions(project: dict[str, Any], pins: dict[str, Version]) -> None:
    readme = (ROOT / "README.md").read_text()
    for name in ("apache-airflow", "dbos"):
        [declared] = [r for r in project["dependencies"] if canonicalize_name(Requirement(r).name) == name]
        assert f"`{declared}`" in readme, f"README does not state {declared}"
    assert f"Python {_floor(SpecifierSet(project['requires-python']))}" in readme


def test_wheel_ships_the_views_templates_and_static_files(tmp_path: Any) -> None:
    """docs/ui.md, "Security": the templates and the CSS/JS the CSP allows are package data."""
    import subprocess
    import zipfile

    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [wheel] = tmp_path.glob("dbos_airflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    plugin = ROOT / "dbos_airflow" / "plugin"
    wanted = {
        f"dbos_airflow/plugin/{p.relative_to(plugin).as_posix()}"
        for folder in ("templates", "static")
        for p in (plugin / folder).iterdir()
    }
    assert wanted and wanted <= names, sorted(wanted - names)
