"""The local stack without Docker: the example DBOS worker plus Airflow, all on loopback.

What ``make airflow`` (scripts/local_stack.py), ``make demo`` (scripts/demo.py), the Prefect demo
and the tests share. ``ROOT`` is this checkout (the package is installed editable by the Makefile).

The DBOS system database is ``$DBOS_SYSTEM_DATABASE_URL`` when set, else an embedded SQLite file
under ``.demo/`` (no server needed). Airflow reaches it through ``AIRFLOW_CONN_DBOS_DEFAULT``,
whose ``system_database_url`` extra names the same database. ``scripts/demo.py`` and the tests
reuse the helpers here, and ``docker-compose.yml`` wires the same pieces together.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from dbos_testkit.child_process import ChildProcess

ROOT = Path(__file__).resolve().parents[3]  # packages/dbos-testkit/dbos_testkit/ -> the checkout
DEMO_DIR = ROOT / ".demo"
DAGS_DIR = ROOT / "dags"
WORKER_SCRIPT = ROOT / "examples" / "order_worker.py"
BIN = Path(sys.executable).parent
READY_LINE = "WORKER READY"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


def system_database_url(demo_dir: Path = DEMO_DIR) -> str:
    """``$DBOS_SYSTEM_DATABASE_URL``, else a SQLite file in ``demo_dir``."""
    url = os.environ.get("DBOS_SYSTEM_DATABASE_URL", "").strip()
    if url:
        return url
    demo_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(demo_dir / 'dbos.sqlite').resolve()}"


def dbos_connection(system_database_url: str) -> str:
    """``AIRFLOW_CONN_DBOS_DEFAULT`` (JSON form) for the worker's system database."""
    return json.dumps({"conn_type": "dbos", "extra": {"system_database_url": system_database_url}})


def airflow_env(airflow_home: Path, system_database_url: str, **overrides: str) -> dict[str, str]:
    """Environment for Airflow processes: private home, SQLite metadata DB, dags/, the dbos connection."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW_CONN_DBOS_DEFAULT": dbos_connection(system_database_url),
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def airflow(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``airflow <args>`` with ``env``; output captured."""
    return subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=timeout)


def migrate(env: dict[str, str]) -> None:
    done = airflow("db", "migrate", env=env)
    if done.returncode != 0:
        raise SystemExit(f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_worker(
    system_database_url: str, log_path: Path, echo: IO[str] | None = None, timeout: float = 120
) -> ChildProcess:
    """Start examples/order_worker.py on ``system_database_url``; return once it printed its ready line."""
    env = {**os.environ, "DBOS_SYSTEM_DATABASE_URL": system_database_url, "PYTHONUNBUFFERED": "1"}
    worker = ChildProcess("worker", [sys.executable, str(WORKER_SCRIPT)], env, log_path, echo)
    try:
        worker.wait_for(READY_LINE, timeout)
    except RuntimeError:
        worker.stop()
        raise
    return worker


def standalone_env(airflow_home: Path, system_database_url: str, port: int) -> dict[str, str]:
    """Environment for ``airflow standalone`` serving the UI and execution API on 127.0.0.1:``port``."""
    base = f"http://127.0.0.1:{port}"
    return airflow_env(
        airflow_home,
        system_database_url,
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__BASE_URL=base,
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{base}/execution/",
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL="5",
    )


def start_standalone(airflow_home: Path, system_database_url: str, port: int, log_path: Path) -> ChildProcess:
    """Start ``airflow standalone`` (:func:`standalone_env`); not waited for (see :func:`wait_http`).

    Its ``stop()`` sends SIGINT, standalone's own way to shut its components down; on SIGTERM it would
    die at once and leave its scheduler, dag-processor, triggerer and api-server running (the sweep by
    mark in ``ChildProcess.stop`` still stops those, but only after its grace).
    """
    env = standalone_env(airflow_home, system_database_url, port)
    return ChildProcess("airflow", [str(BIN / "airflow"), "standalone"], env, log_path, stop_signal=signal.SIGINT)


def admin_password(airflow_home: Path, timeout: float = 120) -> str:
    """The generated password of user ``admin`` (SimpleAuthManager), once the API server wrote it."""
    path = airflow_home / PASSWORDS_FILE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return str(json.loads(path.read_text())["admin"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            time.sleep(0.5)
    raise RuntimeError(f"no admin password in {path} after {timeout:.0f}s")


def wait_http(url: str, timeout: float) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(1)


def shown_url(url: str) -> str:
    import sqlalchemy as sa

    return sa.make_url(url).render_as_string(hide_password=True)
