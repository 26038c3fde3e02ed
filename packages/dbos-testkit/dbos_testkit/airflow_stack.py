"""A real Airflow deployment for tests: api-server, scheduler, dag-processor, triggerer(s), workers.

    stack = AirflowStack(dags_folder, env={"AIRFLOW_CONN_DBOS_DEFAULT": ...})
    try:
        stack.start()                                   # migrate, then every component
        run_id = stack.trigger("my_dag", conf={...})
        stack.wait_run(run_id, "my_dag", {"success"}, timeout=120)
        stack.kill("triggerer")                         # SIGKILL by pid
        stack.start_component("triggerer")
    finally:
        stack.stop()                                    # every component by pid, then DROP DATABASE

Each stack has its own AIRFLOW_HOME (a temp dir) and a fresh Postgres metadata database on the
local server (``AIRFLOW_STACK_POSTGRES``, default ``postgresql://postgres@127.0.0.1:5432/postgres``),
dropped by :meth:`AirflowStack.stop`. The executor is ``LocalExecutor`` or ``CeleryExecutor``
(Redis broker at ``AIRFLOW_STACK_REDIS``, default ``redis://127.0.0.1:6379/<n>``; start workers
with ``start_component("celery-worker", name=...)``). Timers that matter for fault tests are
short (orphan checks, health thresholds, heartbeat timeouts): see :data:`FAST_TIMERS`.

Every component is a :class:`ChildProcess` in its own process group; :meth:`kill` sends a
signal to one component's process group (``-9`` kills a task supervisor and its task too when
``group=True``). Processes are found by pid or by the mark each component's processes carry in
their environment (:mod:`dbos_testkit.processes`), never by name. No Airflow import: the tests'
own process keeps its own (SQLite) Airflow configuration.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import sqlalchemy as sa

from dbos_testkit.child_process import ChildProcess

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

BIN = Path(sys.executable).parent
POSTGRES = os.environ.get("AIRFLOW_STACK_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("AIRFLOW_STACK_REDIS", "redis://127.0.0.1:6379")

# Timers shortened so that faults are noticed in seconds, not minutes.
FAST_TIMERS = {
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
    "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_SEC": "2",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
}

COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--port", "{port}"],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer"],
    "celery-worker": ["celery", "worker", "--concurrency", "4", "--celery-hostname", "{name}@%h"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")


class AirflowStack:
    """One Airflow deployment on loopback; see the module docstring.

    :param dags_folder: the DAGs folder the dag-processor parses.
    :param env: extra environment for every component (connections, ``PYTHONPATH`` ...).
    :param executor: ``LocalExecutor`` or ``CeleryExecutor``.
    :param log_dir: where component logs go (default: ``<AIRFLOW_HOME>/component-logs``).
    """

    def __init__(
        self,
        dags_folder: Path,
        *,
        env: dict[str, str] | None = None,
        executor: str = "LocalExecutor",
        log_dir: Path | None = None,
        parallelism: int = 32,
    ) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="airflow-stack-"))
        self.log_dir = log_dir or self.home / "component-logs"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.database = f"airflow_stack_{secrets.token_hex(4)}"
        self.executor = executor
        self.components: dict[str, ChildProcess] = {}
        # Every component ever started: a component killed by pid alone (an OOM-like kill of the
        # scheduler) leaves what it started (LocalExecutor workers, serve-logs) behind, also once its
        # name is reused by a restarted component; stop() stops them all by their marks.
        self._started: list[ChildProcess] = []
        self._token: str | None = None
        self._http = httpx.Client(base_url=self.base, timeout=30)
        metadata = sa.make_url(POSTGRES).set(drivername="postgresql+psycopg", database=self.database)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        self.env: dict[str, str] = {
            **base_env,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__API__BASE_URL": self.base,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata.render_as_string(hide_password=False),
            # Airflow would derive postgresql+asyncpg (not installed); psycopg 3 is async too.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": metadata.render_as_string(hide_password=False),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "PATH": f"{BIN}{os.pathsep}{base_env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            **FAST_TIMERS,
        }
        if executor == "CeleryExecutor":
            db = secrets.randbelow(14) + 1
            self.env["AIRFLOW__CELERY__BROKER_URL"] = f"{REDIS}/{db}"
            self.env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + metadata.set(
                drivername="postgresql"
            ).render_as_string(hide_password=False)
        self.env.update(env or {})

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, components: Iterable[str] = ("api-server", "scheduler", "dag-processor", "triggerer")) -> None:
        """Create and migrate the metadata database, then start ``components``; wait for the API."""
        self.create_database()
        self.migrate()
        for name in components:
            self.start_component(name)
        self.wait_api()

    def create_database(self) -> None:
        engine = _engine(POSTGRES)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{self.database}"'))
        finally:
            engine.dispose()

    def migrate(self) -> None:
        done = self.airflow("db", "migrate", timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run one ``airflow`` CLI command in the stack's environment."""
        return subprocess.run(
            [str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def start_component(self, kind: str, *, name: str | None = None, env: dict[str, str] | None = None) -> ChildProcess:
        """Start ``airflow <kind>`` under ``name`` (default: ``kind``); a second triggerer needs a new name."""
        name = name or kind
        if name in self.components and self.components[name].proc.poll() is None:
            raise RuntimeError(f"{name} is already running (pid {self.components[name].proc.pid})")
        argv = [str(BIN / "airflow"), *(a.format(port=self.port, name=name) for a in COMPONENTS[kind])]
        extra = dict(env or {})
        if kind == "triggerer" and name != "triggerer":  # each triggerer serves its logs on its own port
            extra.setdefault("AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT", str(free_port()))
        if kind == "celery-worker":
            extra.setdefault("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", str(free_port()))
        proc = ChildProcess(name, argv, {**self.env, **extra}, self.log_dir / f"{name}.log")
        self.components[name] = proc
        self._started.append(proc)
        return proc

    def pid(self, name: str) -> int:
        return self.components[name].proc.pid

    def kill(self, name: str, sig: int = signal.SIGKILL, *, wait: float = 10) -> None:
        """Send ``sig`` to component ``name``'s process group (by pid) and wait for it to exit."""
        proc = self.components[name].proc
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)

    def stop_component(self, name: str, grace: float = 15) -> None:
        self.components[name].stop(grace=grace)

    def stop(self) -> None:
        """Stop every component (SIGTERM, then SIGKILL) by pid and drop the metadata database."""
        # Every group ever started, also of a component a test killed by pid (a scheduler killed -9 leaves
        # its LocalExecutor workers and serve-logs in its group, reparented to init, their environment wiped).
        groups = [c.proc for c in self._started]
        for proc in groups:  # all at once: each component takes seconds to shut down
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in groups:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        for proc in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group: task processes of a killed supervisor too
        for component in self._started:  # the rest of each group, and what left it, by the mark
            with contextlib.suppress(Exception):
                component.stop(grace=1)
        self._http.close()
        engine = _engine(POSTGRES)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
        finally:
            engine.dispose()
        if os.environ.get("AIRFLOW_STACK_KEEP_HOME") != "1":
            shutil.rmtree(self.home, ignore_errors=True)

    def tail(self, name: str, lines: int = 40) -> str:
        return "\n".join(self.components[name].lines[-lines:])

    # -- REST API --------------------------------------------------------------------------

    def wait_api(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._http.get("/api/v2/monitor/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            proc = self.components.get("api-server")
            if proc is not None and proc.proc.poll() is not None:
                raise RuntimeError(f"api-server exited:\n{self.tail('api-server')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"api-server did not answer in {timeout:.0f}s:\n{self.tail('api-server')}")
            time.sleep(1)

    def _auth(self) -> dict[str, str]:
        if self._token is None:
            password = self.admin_password()
            resp = self._http.post("/auth/token", json={"username": "admin", "password": password})
            resp.raise_for_status()
            self._token = resp.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def admin_password(self, timeout: float = 60) -> str:
        path = self.home / "simple_auth_manager_passwords.json.generated"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, KeyError):
                return str(json.loads(path.read_text())["admin"])
            time.sleep(0.5)
        raise RuntimeError(f"no admin password in {path}")

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the public REST API (``/api/v2`` + ``path``) as admin; the JSON answer."""
        resp = self._http.request(method, f"/api/v2{path}", headers=self._auth(), **kwargs)
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:500]}")
        return resp.json() if resp.content else None

    def page(self, path: str, **params: Any) -> httpx.Response:
        """GET a page the API server serves outside ``/api/v2`` (a plugin's, e.g. ``/dbos/workflows``) as admin."""
        return self._http.get(path, params=params, headers=self._auth())

    def wait_dag(self, dag_id: str, timeout: float = 120) -> None:
        """Wait until the dag-processor has serialized ``dag_id``."""
        self.wait_until(lambda: self._dag_exists(dag_id), timeout, f"DAG {dag_id} parsed")

    def _dag_exists(self, dag_id: str) -> bool:
        try:
            self.api("GET", f"/dags/{dag_id}/details")
            return True
        except RuntimeError:
            return False

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None) -> str:
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return str(self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        suffix = f"/{map_index}" if map_index >= 0 else ""
        return dict(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}{suffix}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run (the API answers at most 100 a page)."""
        out: list[dict[str, Any]] = []
        while True:
            page = self.api(
                "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100, "offset": len(out)}
            )
            out += page["task_instances"]
            if not page["task_instances"] or len(out) >= page["total_entries"]:
                return out

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> Any:
        """What a person does with "Mark as failed/success" in the UI."""
        return self.api("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}", json={"new_state": state})

    def wait_run(self, dag_id: str, run_id: str, states: set[str], timeout: float) -> str:
        """Wait until the run is in one of ``states`` (or any finished state; then check); its state."""
        done = {"success", "failed"}
        seen: list[str] = []

        def ready() -> bool:
            seen[:] = [self.run_state(dag_id, run_id)]
            return seen[0] in states | done

        try:
            self.wait_until(ready, timeout, f"run {run_id} of {dag_id} in {sorted(states)}")
        except TimeoutError as exc:  # say where the run stands, not only that it did not arrive
            tis = [
                {k: ti.get(k) for k in ("task_id", "map_index", "state", "try_number", "hostname", "pid")}
                for ti in self.task_instances(dag_id, run_id)
            ]
            raise TimeoutError(
                f"{exc}; run state {seen[0] if seen else None!r}; task instances {tis}\n{self.recent_lines()}"
            ) from None
        return seen[0]

    def recent_lines(self, lines: int = 12, kinds: tuple[str, ...] = ("scheduler", "triggerer")) -> str:
        """The last ``lines`` lines of each running scheduler and triggerer, for a failure message."""
        out = []
        for name, component in self.components.items():
            if name.startswith(kinds) and component.proc.poll() is None:
                out.append(f"--- {name}:")
                out.extend(line[:300] for line in component.lines[-lines:])
        return "\n".join(out)

    def wait_ti(
        self, dag_id: str, run_id: str, task_id: str, states: set[str | None], timeout: float, map_index: int = -1
    ) -> dict[str, Any]:
        seen: list[dict[str, Any]] = []

        def ready() -> bool:
            seen[:] = [self.task_instance(dag_id, run_id, task_id, map_index)]
            return seen[0]["state"] in states

        self.wait_until(ready, timeout, f"{task_id} of {run_id} in {sorted(map(str, states))}")
        return seen[0]

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str, interval: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                alive = {n: c.proc.poll() is None for n, c in self.components.items()}
                raise TimeoutError(f"not reached in {timeout:.0f}s: {what}; components alive: {alive}")
            time.sleep(interval)

    # -- task processes and logs -----------------------------------------------------------

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """The task's log file of one try (``dag_id=/run_id=/task_id=/attempt=N.log``), as text."""
        base = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            base = base / f"map_index={map_index}"
        path = base / f"attempt={try_number}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def task_pids(ti: dict[str, Any]) -> int | None:
    """The pid of a running task instance's task process (the API reports it), or None."""
    pid = ti.get("pid")
    return int(pid) if pid else None
