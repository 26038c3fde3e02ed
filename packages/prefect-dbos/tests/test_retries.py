"""Task retries, flow retries and ``prefect flow-run retry`` re-attach to one workflow
(packages/prefect-dbos/README.md, "Retries")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import PACKAGE, workflow_rows
from flows import (
    enqueue_and_fail_unless_flag,
    enqueue_then_fail_once,
    flaky_workflow,
    parent_of_the_wait_flow,
    user_task_retry,
)
from prefect.client.orchestration import get_client

from prefect_dbos.ids import flow_run_prefix


def _flow_run_id(state: object) -> str:
    return str(state.state_details.flow_run_id)  # type: ignore[attr-defined]


async def test_a_flow_retry_re_attaches_to_every_workflow(
    database: object, rows: sa.Engine, tmp_path: Path, system_database_url: str
) -> None:
    """packages/prefect-dbos/README.md, "Retries": a flow retry gets new task runs, yet each call finds its workflow;
    two identical calls stay two workflows."""
    state = await enqueue_then_fail_once(system_database_url, str(tmp_path / "flag"), return_state=True)
    assert state.is_completed(), state
    assert await state.result() == [2, 2, 4]
    found = workflow_rows(rows, flow_run_prefix(_flow_run_id(state)))
    assert len(found) == 3 and {s for _, s in found} == {"SUCCESS"}, found
    async with get_client() as client:
        run = await client.read_flow_run(state.state_details.flow_run_id)
    assert run.run_count == 2


async def test_a_task_retry_re_attaches(
    database: object, rows: sa.Engine, tmp_path: Path, system_database_url: str
) -> None:
    """packages/prefect-dbos/README.md, "Retries": the user's task enqueues, fails, is retried: one workflow."""
    state = await user_task_retry(system_database_url, str(tmp_path / "flag"), return_state=True)
    assert state.is_completed(), state
    assert await state.result() == 10
    found = workflow_rows(rows, flow_run_prefix(_flow_run_id(state)))
    assert [s for _, s in found] == ["SUCCESS"], found


def test_prefect_flow_run_retry_re_attaches(
    database: object, rows: sa.Engine, tmp_path: Path, system_database_url: str, prefect_server: str
) -> None:
    """packages/prefect-dbos/README.md, "Retries": a person runs the same flow run again (``prefect flow-run retry``): one workflow."""
    flag = str(tmp_path / "flag")
    state = enqueue_and_fail_unless_flag(system_database_url, flag, return_state=True)
    assert state.is_failed(), state
    run_id = _flow_run_id(state)
    assert len(workflow_rows(rows, flow_run_prefix(run_id))) == 1
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "flow-run", "retry", run_id, "--entrypoint",
         f"{PACKAGE / 'tests' / 'flows.py'}:enqueue_and_fail_unless_flag"],
        env=env, capture_output=True, text=True, timeout=300, cwd=PACKAGE / "tests",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.state is not None and run.state.is_completed(), run.state
    found = workflow_rows(rows, flow_run_prefix(run_id))
    assert [s for _, s in found] == ["SUCCESS"], found


@pytest.mark.parametrize(
    ("retry_mode", "expected"),
    [("resume", {"a_runs": 1, "b_runs": 2}), ("restart", {"a_runs": 2, "b_runs": 2})],
)
async def test_retry_mode_reruns_a_failed_workflow(
    database: object, rows: sa.Engine, system_database_url: str, retry_mode: str, expected: dict[str, int]
) -> None:
    """packages/prefect-dbos/README.md, "Retries": a retry finding the workflow failed re-runs it: resume keeps the completed step."""
    state = await flaky_workflow(system_database_url, retry_mode, return_state=True)
    assert state.is_completed(), state
    assert await state.result() == expected
    found = workflow_rows(rows, flow_run_prefix(_flow_run_id(state)))
    assert [s for _, s in found] == ["SUCCESS"], found


async def test_retry_mode_fail_fails_with_the_workflows_error(
    database: object, rows: sa.Engine, system_database_url: str
) -> None:
    """packages/prefect-dbos/README.md, "Retries": retry_mode="fail" does not re-run; the error is the workflow's own."""
    state = await flaky_workflow(system_database_url, "fail", return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match=r"DBOS workflow ended ERROR: AppError: step_b fails on its first run"):
        await state.result()
    found = workflow_rows(rows, flow_run_prefix(_flow_run_id(state)))
    assert [s for _, s in found] == ["ERROR"], found


async def test_a_parent_flow_retry_re_attaches_the_wait_flows_workflows(
    database: object, rows: sa.Engine, tmp_path: Path, system_database_url: str
) -> None:
    """packages/prefect-dbos/README.md, "Flow": run as a subflow (a new flow run on each attempt of the parent), the
    workflow id comes from the parent flow run: a parent retry re-attaches; two calls stay two."""
    state = await parent_of_the_wait_flow(system_database_url, str(tmp_path / "flag"), return_state=True)
    assert state.is_completed(), state
    assert await state.result() == [14, 14]
    found = workflow_rows(rows, flow_run_prefix(_flow_run_id(state)))
    assert [s for _, s in found] == ["SUCCESS", "SUCCESS"], found
