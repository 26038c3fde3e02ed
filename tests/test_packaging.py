"""pyproject.toml declares what CI tests: its floors are the versions constraints.txt pins.

CI installs the project with ``pip install -c constraints.txt`` on one Python, so a floor below a
pin is a version nobody ran (Airflow 3.2 is one: see README "Install"). These checks make the two
files move together.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
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
# Built from this repository and required at exactly this project's version (not in constraints.txt:
# pip cannot constrain a path install to a version).
CORE = ROOT / "packages" / "dbos-orchestrator"
PREFECT = ROOT / "packages" / "prefect-dbos"
SIBLINGS = ("dbos-orchestrator",)


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
        if name in SIBLINGS:
            continue
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


def test_the_core_is_required_at_this_version(project: dict[str, Any]) -> None:
    """docs/architecture.md, "Layers": dbos-airflow and dbos-orchestrator are released together."""
    core = tomllib.loads((CORE / "pyproject.toml").read_text())["project"]
    [req] = [Requirement(r) for r in project["dependencies"] if canonicalize_name(Requirement(r).name) in SIBLINGS]
    assert str(req.specifier) == f"=={project['version']}" == f"=={core['version']}"
    assert version("dbos-orchestrator") == core["version"]
    names = {canonicalize_name(Requirement(r).name) for r in core["dependencies"]}
    assert not {n for n in names if "airflow" in n or "prefect" in n}, names
    # The core's own floors are the provider's (one set of pins for both).
    ours = {str(r) for r in project["dependencies"]}
    assert set(core["dependencies"]) <= ours


def test_the_license_text_is_the_full_apache_license() -> None:
    """The three distributions declare Apache-2.0: the repository and each distribution's own
    folder (a wheel ships only files below its pyproject) carry its whole text."""
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) > 200
    for folder in (CORE, PREFECT):
        assert (folder / "LICENSE").read_text() == text, folder


def test_the_wheels_build_with_their_type_marker_and_license(tmp_path: Any) -> None:
    """README, "Applications in other languages": the wheels hold their package and its metadata,
    never the example apps (``make ts-app`` installs node_modules under examples/), and the
    license text their metadata names (PEP 639: ``License-File``, in ``.dist-info/licenses/``)."""

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(CORE),
            str(PREFECT),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    wheels = {p.name.split("-")[0]: p for p in tmp_path.glob("*.whl")}
    assert set(wheels) == {"dbos_airflow", "dbos_orchestrator", "prefect_dbos"}
    license_text = (ROOT / "LICENSE").read_bytes()
    for package, wheel in wheels.items():
        names = zipfile.ZipFile(wheel).namelist()
        dist_info = wheel.name.rsplit("-", 3)[0] + ".dist-info"
        assert f"{package}/py.typed" in names
        assert not [n for n in names if n.split("/")[0] not in (package, dist_info)]
        assert not [n for n in names if "node_modules" in n or n.endswith(".ts")]
        metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
        assert "License-Expression: Apache-2.0" in metadata and "License-File: LICENSE" in metadata, package
        assert zipfile.ZipFile(wheel).read(f"{dist_info}/licenses/LICENSE") == license_text, package
    core_files = zipfile.ZipFile(wheels["dbos_orchestrator"]).namelist()
    assert "dbos_orchestrator/waiting/waiter.py" in core_files and "dbos_orchestrator/store/values.py" in core_files
    # docs/ui.md, "Security": the view's templates and the CSS/JS its CSP allows are package data.
    plugin = ROOT / "dbos_airflow" / "plugin"
    wanted = {
        f"dbos_airflow/plugin/{p.relative_to(plugin).as_posix()}"
        for folder in ("templates", "static")
        for p in (plugin / folder).iterdir()
    }
    names = set(zipfile.ZipFile(wheels["dbos_airflow"]).namelist())
    assert wanted and wanted <= names, sorted(wanted - names)
    metadata = zipfile.ZipFile(wheels["dbos_airflow"]).read("dbos_airflow-0.1.0.dist-info/METADATA").decode()
    assert "Requires-Dist: dbos-orchestrator==0.1.0" in metadata
