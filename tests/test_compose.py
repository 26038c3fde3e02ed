"""docker-compose.yml cannot run here (no Docker engine), so it is checked by reading: its services,
environment and mounts must agree with each other, with the Makefile and with `make airflow`."""

from __future__ import annotations

import re
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import local_stack
import pytest
import sqlalchemy as sa
import yaml
from conftest import ROOT

from dbos_airflow.hooks.connection import DBOSConnectionSettings  # noqa: E402


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> host path (relative to the repository)."""
    out = {}
    for volume in service.get("volumes", []):
        host, container, *_ = volume.split(":")
        out[container] = host
    return out


def _command(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def test_services_and_their_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "worker", "airflow"}
    assert services["worker"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert set(services["airflow"]["depends_on"]) == {"postgres", "worker"}
    assert "healthcheck" in services["postgres"]


def test_worker_runs_the_example_app_on_the_postgres_service(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    script = local_stack.WORKER_SCRIPT.relative_to(ROOT).as_posix()
    assert script in _command(worker)
    assert _mounts(worker)[f"{worker['working_dir']}/examples"] == "./examples"
    assert (ROOT / _mounts(worker)[f"{worker['working_dir']}/constraints.txt"]).is_file()
    url = sa.make_url(_env(worker)["DBOS_SYSTEM_DATABASE_URL"])
    postgres_env = _env(compose["services"]["postgres"])
    assert (url.host, url.username, url.password) == ("postgres", postgres_env["POSTGRES_USER"],
                                                      postgres_env["POSTGRES_PASSWORD"])


def test_airflow_connection_points_at_the_workers_system_database(compose: dict[str, Any]) -> None:
    from airflow.models.connection import Connection

    services = compose["services"]
    conn = Connection(conn_id="dbos_default", uri=_env(services["airflow"])["AIRFLOW_CONN_DBOS_DEFAULT"])
    assert conn.conn_type == "dbos"
    airflow_side = sa.make_url(DBOSConnectionSettings.from_connection(conn).system_database_url)
    worker_side = sa.make_url(_env(services["worker"])["DBOS_SYSTEM_DATABASE_URL"])
    assert airflow_side.set(query={}) == worker_side.set(query={})


def test_airflow_service_matches_make_airflow(compose: dict[str, Any], tmp_path: Path) -> None:
    airflow = compose["services"]["airflow"]
    env, mounts = _env(airflow), _mounts(airflow)
    # dags/ is mounted where AIRFLOW__CORE__DAGS_FOLDER points, as make airflow points it at dags/.
    assert mounts[env["AIRFLOW__CORE__DAGS_FOLDER"]] == "./" + local_stack.DAGS_DIR.relative_to(ROOT).as_posix()
    # The provider source is mounted and installed; the same Airflow version as the venv.
    assert {h for c, h in mounts.items() if c.startswith("/opt/dbos-airflow")} >= {"./pyproject.toml", "./dbos_airflow"}
    assert airflow["image"].startswith(f"apache/airflow:{version('apache-airflow')}-")
    assert f'"apache-airflow=={version("apache-airflow")}"' in _command(airflow)
    assert "airflow standalone" in _command(airflow)
    # Same settings as scripts/local_stack.standalone_env (port, login user, no examples, Test button).
    local = local_stack.standalone_env(tmp_path, "sqlite:////tmp/x.sqlite", 8080)
    for key in ("AIRFLOW__CORE__LOAD_EXAMPLES", "AIRFLOW__CORE__TEST_CONNECTION",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "AIRFLOW__API__PORT"):
        assert env[key] == local[key], key
    assert f"{env['AIRFLOW__API__PORT']}:{env['AIRFLOW__API__PORT']}" in airflow["ports"]


def test_makefile_targets_run_the_same_scripts() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "airflow"):
        assert re.search(rf"^{target}: \$\(STAMP\)", makefile, re.MULTILINE), f"make {target} must bootstrap .venv"
    dry = subprocess.run(["make", "-n", "demo", "airflow"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert "scripts/demo.py" in dry and "scripts/local_stack.py" in dry
    assert local_stack.WORKER_SCRIPT.is_file() and local_stack.DAGS_DIR.is_dir()
