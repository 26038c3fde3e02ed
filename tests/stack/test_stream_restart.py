"""A deferred stream sensor across a triggerer restart, under a real Airflow (api-server, scheduler,
dag-processor, triggerer, LocalExecutor, Postgres metadata DB: dbos_testkit/airflow_stack.py), the
real DBOS worker and Postgres. DAG: tests/dags/stream_stack/dbos_stream_stack_dags.py.

Proves (docs/streams.md, "Retries"): 1,000 values written at 200/s reach the task's log in order,
none missing or doubled, although the triggerer is stopped (SIGTERM) after the first 500 were
logged and another one started: the trigger saved its offset when it was cancelled, and the new
trigger continued from it. Run under ``flock /tmp/heavy.lock`` (one heavy suite at a time).
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, unique
from dbos_orchestrator.client import DBOSClient
from dbos_testkit.airflow_stack import AirflowStack

pytestmark = pytest.mark.stack

DAG_ID = "dbos_t_stream_stack"
VALUE = re.compile(r"stream 'progress' #(\d+): ")


@pytest.fixture(scope="module")
def stack(dbos_conn: str) -> Iterator[AirflowStack]:
    s = AirflowStack(
        ROOT / "tests" / "dags" / "stream_stack",
        env={"AIRFLOW_CONN_DBOS_DEFAULT": os.environ["AIRFLOW_CONN_DBOS_DEFAULT"]},
        parallelism=4,
    )
    try:
        s.start()
        s.wait_dag(DAG_ID, timeout=180)
        yield s
    finally:
        s.stop()


def logged_offsets(stack: AirflowStack, run_id: str) -> list[int]:
    """The stream values in try 1's logs: the worker's file and the triggers' files beside it."""
    base = stack.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / "task_id=stream"
    offsets: list[int] = []
    for path in sorted(Path(base).glob("attempt=1.log*"), key=lambda p: p.stat().st_mtime):
        offsets.extend(int(m.group(1)) for m in VALUE.finditer(path.read_text(errors="replace")))
    return offsets


def test_1000_values_logged_once_across_a_triggerer_restart(stack: AirflowStack, client: DBOSClient) -> None:
    wid = unique("stream-stack")
    # Nothing for 20 s (the task defers first), 500 values at 200/s, a 5 s pause, 500 more, closed.
    client.enqueue(
        {"queue_name": "q", "workflow_name": "wf_stream", "workflow_id": wid},
        "progress",
        1000,
        0.005,
        pause_at=500,
        start_after=20.0,
    )
    run_id = stack.trigger(DAG_ID, {"workflow_id": wid})
    stack.wait_ti(DAG_ID, run_id, "stream", {"deferred"}, timeout=120)
    stack.wait_until(lambda: 499 in logged_offsets(stack, run_id), 120, "the first 500 values logged", interval=0.2)
    stack.kill("triggerer", signal.SIGTERM, wait=30)  # a graceful stop: the trigger saves its offset
    stack.start_component("triggerer")
    assert stack.wait_run(DAG_ID, run_id, {"success", "failed"}, timeout=240) == "success", stack.recent_lines()
    offsets = logged_offsets(stack, run_id)
    assert offsets == list(range(1000)), (len(offsets), sorted(set(range(1000)) - set(offsets))[:10])
    ti = stack.task_instance(DAG_ID, run_id, "stream")
    assert ti["try_number"] == 1
