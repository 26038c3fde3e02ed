"""Deferring under a real scheduler (docs/architecture.md, "Deferring").

Airflow 3.3 burns a try when a trigger fires before the scheduler has processed the executor's
report that the deferring process exited ("... finished with state success, but the task
instance's state attribute is queued"). ``dbos_deploy_race`` (tests/dags/deployment/dbos_deployment_dags.py)
walks into it on purpose: 50 mapped deferrable tasks whose workflows end at once, 50 that
re-attach to those ended workflows, and 20 whose workflows end just after the in-worker check
gave up. Real api-server, scheduler, dag-processor and triggerer, LocalExecutor, Postgres
metadata database, the tests' real DBOS worker.

What must hold: no try is lost (every task instance succeeds on try 1), the scheduler reports no
state mismatch, the first two groups never defer, and for the third group every measured window
(deferral -> the scheduler processing the deferring process's exit) is shorter than the hold its
trigger keeps (``HOLD_EVENT_SECONDS``). The figures are printed (``-s``).
"""

from __future__ import annotations

import json
import re
import statistics
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest
from conftest import ROOT, Worker
from dbos_testkit.airflow_stack import AirflowStack

from dbos_airflow.contract.deferral import HOLD_EVENT_SECONDS

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.deployment

DAG_ID = "dbos_deploy_race"
ITEMS, LATE_ITEMS = 50, 20
MISMATCH = "state attribute is"
RECEIVED = re.compile(
    r"^(\S+Z) .*Received executor event with state success for task instance "
    r"TaskInstanceKey\(dag_id='dbos_deploy_race', task_id='(\w+)', run_id='([^']+)', try_number=1, map_index=(\d+)\)"
)


@pytest.fixture(scope="module")
def stack(system_database_url: str, dbos_worker: Worker) -> Iterator[AirflowStack]:
    conn = json.dumps({"conn_type": "dbos", "extra": {"system_database_url": system_database_url}})
    s = AirflowStack(ROOT / "tests" / "dags" / "deployment", env={"AIRFLOW_CONN_DBOS_DEFAULT": conn})
    try:
        s.start()
        s.wait_dag(DAG_ID, timeout=180)
        yield s
    finally:
        s.stop()


def _when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _paused_at(stack: AirflowStack, run_id: str, task_id: str, map_index: int) -> float | None:
    """When the task logged "Pausing task as DEFERRED" on try 1 (None: it never deferred)."""
    for line in stack.task_log(DAG_ID, run_id, task_id, 1, map_index).splitlines():
        if line.startswith("{") and "Pausing task as DEFERRED" in line:
            return _when(json.loads(line)["timestamp"])
    return None


def _first_exit_seen(scheduler_log: str, run_id: str) -> dict[tuple[str, int], float]:
    """The first executor "success" of try 1 the scheduler processed, per (task_id, map_index)."""
    seen: dict[tuple[str, int], float] = {}
    for line in scheduler_log.splitlines():
        m = RECEIVED.match(line)
        if m and m.group(3) == run_id:
            seen.setdefault((m.group(2), int(m.group(4))), _when(m.group(1)))
    return seen


def _run_once(stack: AirflowStack) -> dict[str, Any]:
    run_id = stack.trigger(DAG_ID)
    state = stack.wait_run(DAG_ID, run_id, {"success"}, timeout=600)
    tis = stack.task_instances(DAG_ID, run_id)
    scheduler_log = (stack.log_dir / "scheduler.log").read_text(errors="replace")
    exits = _first_exit_seen(scheduler_log, run_id)
    windows, deferred = [], {"quick": 0, "reattach": 0, "just_after": 0}
    for ti in tis:
        paused = _paused_at(stack, run_id, ti["task_id"], ti["map_index"])
        if paused is None:
            continue
        deferred[ti["task_id"]] += 1
        if (ti["task_id"], ti["map_index"]) in exits:
            windows.append(exits[ti["task_id"], ti["map_index"]] - paused)
    return {
        "run_id": run_id,
        "state": state,
        "tis": tis,
        "extra_tries": sum(ti["try_number"] - 1 for ti in tis),
        "mismatches": sum(MISMATCH in line and run_id in line for line in scheduler_log.splitlines()),
        "deferred": deferred,
        "windows": sorted(windows),
    }


def _why_retried(stack: AirflowStack, run_id: str, tis: list[dict[str, Any]]) -> list[str]:
    """For the first few task instances that took more than one try: the end of try 1's log and the
    scheduler's lines about that task instance, so that a failure names its cause."""
    scheduler_log = (stack.log_dir / "scheduler.log").read_text(errors="replace").splitlines()
    why = []
    for ti in [t for t in tis if t["try_number"] != 1][:3]:
        key = f"task_id='{ti['task_id']}', run_id='{run_id}', try_number=1, map_index={ti['map_index']}"
        tail = stack.task_log(DAG_ID, run_id, ti["task_id"], 1, ti["map_index"]).splitlines()[-12:]
        seen = [
            line
            for line in scheduler_log
            if key in line or f"{ti['task_id']} {run_id} map_index={ti['map_index']}" in line
        ]
        why.append(f"{ti['task_id']}[{ti['map_index']}] try 1 log tail: {tail}; scheduler: {seen[-8:]}")
    return why


def test_fast_ending_workflows_lose_no_try_under_a_real_scheduler(
    stack: AirflowStack, client: Any, dbos_worker: Worker
) -> None:
    result = _run_once(stack)
    windows = result["windows"]
    print(
        f"\n{DAG_ID}: run {result['state']}, {len(result['tis'])} task instances, "
        f"extra tries {result['extra_tries']}, state mismatches {result['mismatches']}, "
        f"deferred {result['deferred']}; deferral -> exit processed: "
        + (
            f"n={len(windows)} p50 {statistics.median(windows):.2f} s max {windows[-1]:.2f} s "
            f"(all: {' '.join(f'{w:.2f}' for w in windows)})"
            if windows
            else "none measured"
        )
        + f" (hold {HOLD_EVENT_SECONDS} s)"
    )
    assert result["state"] == "success", [ti for ti in result["tis"] if ti["state"] != "success"]
    assert len(result["tis"]) == 2 * ITEMS + LATE_ITEMS
    assert result["extra_tries"] == 0, _why_retried(stack, result["run_id"], result["tis"])
    assert result["mismatches"] == 0
    # Never defer when the answer is known: ended workflows and re-attaches to them finish in the worker.
    assert result["deferred"]["quick"] == 0 and result["deferred"]["reattach"] == 0
    # The late ones deferred, and each trigger held its event past the window Airflow mishandles.
    # (one may end within the last check on a busy machine: that is the rule working, not a miss)
    assert result["deferred"]["just_after"] >= LATE_ITEMS // 2, result["deferred"]
    assert len(windows) == result["deferred"]["just_after"] and windows[-1] < HOLD_EVENT_SECONDS, windows
    rows = client.list_workflows(
        workflow_id_prefix=f"{DAG_ID}:{result['run_id']}:", load_input=False, load_output=False
    )
    assert sorted(r.status for r in rows) == ["SUCCESS"] * (ITEMS + LATE_ITEMS)  # re-attaching made none
