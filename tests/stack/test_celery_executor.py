"""The same contract under the CeleryExecutor (README, "Scaling out: the CeleryExecutor"): nothing in the provider assumes one process.

A real deployment (dbos_testkit/airflow_stack.py) with ``CeleryExecutor``, the local Redis as broker
(``AIRFLOW_STACK_REDIS``, default redis://127.0.0.1:6379) and two ``airflow celery worker``
processes. One worker is killed with -9 (with its task processes, as a lost node) while a
task it runs waits for its workflow; the task's heartbeat times out, the retry runs on the other
worker and re-attaches: one workflow per task instance, each step ran once, the run succeeds.
A deferred wait started at the same time ends right too.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import pytest
from conftest import Worker
from dbos_testkit.airflow_stack import AirflowStack

from stack.test_deployment import DAGS, _conn_json, _one_workflow_each_step_once, _running_pid, _wait_status, _wid

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.deployment


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def celery_stack(system_database_url: str, dbos_worker: Worker) -> Iterator[AirflowStack]:
    if not _redis_answers() and "AIRFLOW_STACK_REDIS" not in os.environ:
        pytest.fail("The CeleryExecutor test needs Redis at 127.0.0.1:6379 (or AIRFLOW_STACK_REDIS)", pytrace=False)
    s = AirflowStack(
        DAGS, executor="CeleryExecutor", env={"AIRFLOW_CONN_DBOS_DEFAULT": _conn_json(system_database_url)}
    )
    try:
        s.start()
        s.start_component("celery-worker", name="celery-1")
        s.start_component("celery-worker", name="celery-2")
        for dag_id in ("dbos_deploy_killed", "dbos_deploy_wait_deferrable"):
            s.wait_dag(dag_id, timeout=180)
        yield s
    finally:
        s.stop()


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_celery_worker_killed_mid_wait(celery_stack: AirflowStack, client: Any, dbos_worker: Worker) -> None:
    stack = celery_stack
    sync = stack.trigger("dbos_deploy_killed", {"steps": 4, "delay": 6})
    deferred = stack.trigger("dbos_deploy_wait_deferrable", {"steps": 3, "delay": 4})
    # The deferrable task first checks in its worker for a few seconds (docs/architecture.md,
    # "Deferring"); it is the deferred wait that must ride out the worker's death, so kill after it deferred.
    stack.wait_ti("dbos_deploy_wait_deferrable", deferred, "run", {"deferred"}, timeout=120)
    task_pid = _running_pid(stack, "dbos_deploy_killed", sync)
    _wait_status(client, _wid("dbos_deploy_killed", sync), {"PENDING"})
    worker_group = os.getpgid(_ppid(task_pid))  # the supervisor runs in a worker's pool process
    owner = next(name for name, c in stack.components.items() if c.proc.pid == worker_group)
    assert owner in ("celery-1", "celery-2")
    stack.kill(owner)  # the worker and its pool, -9
    with contextlib.suppress(ProcessLookupError):
        os.kill(task_pid, 9)  # the task process has its own process group: a lost node loses it too
    started = time.monotonic()
    assert stack.wait_run("dbos_deploy_killed", sync, {"success"}, timeout=180) == "success", stack.task_instances(
        "dbos_deploy_killed", sync
    )
    assert stack.wait_run("dbos_deploy_wait_deferrable", deferred, {"success"}, timeout=120) == "success"
    ti = stack.task_instance("dbos_deploy_killed", sync, "run")
    assert ti["try_number"] == 2, ti
    _one_workflow_each_step_once(client, dbos_worker, "dbos_deploy_killed", sync, steps=4)
    _one_workflow_each_step_once(client, dbos_worker, "dbos_deploy_wait_deferrable", deferred, steps=3)
    print(f"retry finished {time.monotonic() - started:.0f}s after the worker was killed")
