"""docker-compose.yml cannot run here (no Docker engine), so it is checked by reading: its two profiles'
services, environment, mounts and image must agree with each other, with the Dockerfile and constraints.txt,
with the Makefile and with `make airflow` (scripts/local_stack.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from conftest import ROOT
from dbos_testkit import local_stack

from dbos_airflow.hooks.connection import DBOSConnectionSettings  # noqa: E402

STANDALONE = {"postgres", "worker", "airflow"}
CELERY_AIRFLOW = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "celery-worker-1",
    "celery-worker-2",
}
CELERY = {"postgres", "redis", "dbos-worker-1", "dbos-worker-2"} | CELERY_AIRFLOW
# Settings of scripts/local_stack.standalone_env that every Airflow process of the compose file shares.
UI_SETTINGS = (
    "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW__CORE__TEST_CONNECTION",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "AIRFLOW__API__PORT",
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def _active(compose: dict[str, Any], profile: str) -> dict[str, dict[str, Any]]:
    """The services `docker compose --profile <profile> up` starts: no profile, or that one."""
    return {name: s for name, s in compose["services"].items() if not s.get("profiles") or profile in s["profiles"]}


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


def _url(value: str) -> sa.URL:
    return sa.make_url(value).set(query={})


def test_profiles_start_exactly_their_services(compose: dict[str, Any]) -> None:
    assert set(_active(compose, "standalone")) == STANDALONE
    assert set(_active(compose, "celery")) == CELERY
    for profile in ("standalone", "celery"):
        active = _active(compose, profile)
        for name, service in active.items():
            # A dependency outside the profile would make `docker compose --profile <p> up` refuse to start.
            assert set(service.get("depends_on", {})) <= set(active), (profile, name)
        host_ports = [p.split(":")[0] for s in active.values() for p in s.get("ports", [])]
        assert len(host_ports) == len(set(host_ports)), f"{profile}: two services publish one port {host_ports}"
    assert "healthcheck" in compose["services"]["postgres"]


def test_one_image_built_from_the_dockerfile_for_the_provider_and_the_workers(compose: dict[str, Any]) -> None:
    ours = {name: s for name, s in compose["services"].items() if name not in ("postgres", "redis")}
    assert {s["image"] for s in ours.values()} == {"dbos-airflow:local"}
    for name, service in ours.items():
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        assert "pip install" not in _command(service), f"{name} installs packages on every start"


def test_dockerfile_installs_the_project_pinned_by_constraints(dockerfile: str) -> None:
    assert re.search(rf"^FROM python:{sys.version_info.major}\.{sys.version_info.minor}-slim$", dockerfile, re.M), (
        "the image must run the Python CI runs"
    )
    [install] = re.findall(r"^RUN pip install .*$", dockerfile, re.M)
    assert "-c /opt/dbos-airflow/constraints.txt" in install
    assert '"/opt/dbos-airflow[celery]"' in install  # the provider and its celery extra
    assert " /opt/dbos-airflow/packages/dbos-orchestrator " in install  # and the core it requires, same command
    # Everything the build needs is copied, and .dockerignore lets it through.
    copied = " ".join(re.findall(r"^COPY (.*) /opt/dbos-airflow/\S*$", dockerfile, re.M)).split()
    assert set(copied) == {"constraints.txt", "pyproject.toml", "README.md", "dbos_airflow", "packages"}
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert "*" in ignore  # the context is what is copied, not .venv/ or .demo/
    assert {f"!{c}/" if (ROOT / c).is_dir() else f"!{c}" for c in copied} <= set(ignore)


def test_constraints_pin_what_the_image_installs() -> None:
    pins = dict(line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().split())
    for dist in ("apache-airflow", "apache-airflow-providers-celery", "dbos", "celery", "redis"):
        assert pins[dist] == version(dist), f"constraints.txt pins {dist}=={pins[dist]}, this venv has {version(dist)}"


def test_dbos_workers_run_the_example_app_on_the_postgres_service(compose: dict[str, Any]) -> None:
    postgres_env = _env(compose["services"]["postgres"])
    script = local_stack.WORKER_SCRIPT.relative_to(ROOT).as_posix()
    executors = []
    for name in ("worker", "dbos-worker-1", "dbos-worker-2"):
        worker = compose["services"][name]
        assert _command(worker) == f"python {script}", name
        assert _mounts(worker)[f"{worker['working_dir']}/examples"] == "./examples"
        url = sa.make_url(_env(worker)["DBOS_SYSTEM_DATABASE_URL"])
        assert (url.host, url.username, url.password) == (
            "postgres",
            postgres_env["POSTGRES_USER"],
            postgres_env["POSTGRES_PASSWORD"],
        )
        assert url.database == "orders_dbos_sys"
        executors.append(_env(worker)["DBOS_EXECUTOR_ID"])
    assert len(set(executors[1:])) == 2, "the two celery-profile DBOS workers need their own executor ids"


@pytest.mark.parametrize("profile", ["standalone", "celery"])
def test_airflow_connection_points_at_the_workers_system_database(compose: dict[str, Any], profile: str) -> None:
    from airflow.models.connection import Connection

    active = _active(compose, profile)
    workers = {_url(_env(s)["DBOS_SYSTEM_DATABASE_URL"]) for s in active.values() if "DBOS_EXECUTOR_ID" in _env(s)}
    assert len(workers) == 1
    airflows = [s for s in active.values() if any(k.startswith("AIRFLOW") for k in _env(s))]
    assert airflows
    for service in airflows:
        conn = Connection(conn_id="dbos_default", uri=_env(service)["AIRFLOW_CONN_DBOS_DEFAULT"])
        assert conn.conn_type == "dbos"
        assert {_url(DBOSConnectionSettings.from_connection(conn).system_database_url)} == workers


def test_airflow_service_matches_make_airflow(compose: dict[str, Any], tmp_path: Path) -> None:
    airflow = compose["services"]["airflow"]
    env, mounts = _env(airflow), _mounts(airflow)
    # dags/ is mounted where AIRFLOW__CORE__DAGS_FOLDER points, as make airflow points it at dags/.
    assert mounts[env["AIRFLOW__CORE__DAGS_FOLDER"]] == "./" + local_stack.DAGS_DIR.relative_to(ROOT).as_posix()
    assert _command(airflow) == "airflow standalone"
    # Same settings as scripts/local_stack.standalone_env (port, login user, no examples, Test button).
    local = local_stack.standalone_env(tmp_path, "sqlite:////tmp/x.sqlite", 8080)
    for key in UI_SETTINGS:
        assert env[key] == local[key], key
    assert f"{env['AIRFLOW__API__PORT']}:{env['AIRFLOW__API__PORT']}" in airflow["ports"]


def test_celery_profile_runs_every_airflow_component_on_one_configuration(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    services = compose["services"]
    commands = {name: _command(services[name]) for name in CELERY_AIRFLOW}
    assert commands == {
        "airflow-init": commands["airflow-init"],
        "airflow-apiserver": "airflow api-server",
        "airflow-scheduler": "airflow scheduler",
        "airflow-dag-processor": "airflow dag-processor",
        "airflow-triggerer": "airflow triggerer",
        "celery-worker-1": "airflow celery worker",
        "celery-worker-2": "airflow celery worker",
    }
    assert commands["airflow-init"].endswith("&& exec airflow db migrate")
    assert services["celery-worker-1"]["hostname"] != services["celery-worker-2"]["hostname"]

    # One configuration: the same environment and DAG mount in every Airflow process.
    envs = {name: _env(services[name]) for name in CELERY_AIRFLOW}
    env = envs["airflow-scheduler"]
    assert all(e == env for e in envs.values()), "the celery profile's Airflow processes disagree on their settings"
    assert all(_mounts(services[n]) == {env["AIRFLOW__CORE__DAGS_FOLDER"]: "./dags"} for n in CELERY_AIRFLOW)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # The same UI settings as the standalone profile and make airflow.
    local = local_stack.standalone_env(tmp_path, "sqlite:////tmp/x.sqlite", 8080)
    for key in UI_SETTINGS:
        assert env[key] == local[key], key
    # The metadata database is the init's database on the postgres service, reached with psycopg (3).
    postgres_env = _env(services["postgres"])
    metadata = sa.make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert (metadata.drivername, metadata.host, metadata.username, metadata.password) == (
        "postgresql+psycopg",
        "postgres",
        postgres_env["POSTGRES_USER"],
        postgres_env["POSTGRES_PASSWORD"],
    )
    assert f"'CREATE DATABASE {metadata.database}'" in commands["airflow-init"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] == str(metadata.render_as_string(hide_password=False))
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    # The broker is the redis service; the workers reach the API server's execution API by service name.
    broker = sa.make_url(env["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker.drivername, broker.host) == ("redis", "redis")
    api = env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    assert api == f"http://airflow-apiserver:{env['AIRFLOW__API__PORT']}/execution/"
    assert f"{env['AIRFLOW__API__PORT']}:{env['AIRFLOW__API__PORT']}" in services["airflow-apiserver"]["ports"]
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] and env["AIRFLOW__API__SECRET_KEY"]
    # Every long-running component waits for the migration and the broker; the workers for the API server.
    for name in CELERY_AIRFLOW - {"airflow-init"}:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
    for name in ("celery-worker-1", "celery-worker-2"):
        assert services[name]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    assert "healthcheck" in services["airflow-apiserver"] and "healthcheck" in services["redis"]


def test_celery_executor_is_importable_with_the_pinned_provider() -> None:
    """What `airflow celery worker` and the scheduler load, from this venv (the image installs the same pins)."""
    from airflow.providers.celery.executors.celery_executor import CeleryExecutor

    assert CeleryExecutor.__module__.startswith("airflow.providers.celery")


def test_makefile_targets_run_the_same_scripts() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "airflow"):
        assert re.search(rf"^{target}: \$\(STAMP\)", makefile, re.MULTILINE), f"make {target} must bootstrap .venv"
    dry = subprocess.run(["make", "-n", "demo", "airflow"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "scripts/demo.py" in dry and "scripts/local_stack.py" in dry
    assert local_stack.WORKER_SCRIPT.is_file() and local_stack.DAGS_DIR.is_dir()


def test_readme_documents_both_profiles() -> None:
    readme = (ROOT / "README.md").read_text()
    for profile in ("standalone", "celery"):
        assert f"docker compose --profile {profile} up" in readme
