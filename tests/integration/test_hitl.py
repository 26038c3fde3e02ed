"""Approvals through ``dag.test()`` (docs/approvals.md): the real DBOS worker's workflow publishes its
question, the task asks in Airflow, the answer is recorded through Airflow's own REST API (the
``PATCH .../hitlDetails`` the Required Actions click sends, served in-process by the core API app)
while ``dag.test()`` waits in another thread, and the workflow receives it exactly once.

DAGs: tests/dags/dbos_hitl_dags.py; workflow: ``wf_approval`` in tests/dbos_app.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pendulum
import pytest
import sqlalchemy as sa
from conftest import ROOT, unique
from dbos_testkit.notifications import messages_to

QUESTION_TIMEOUT = 600  # a loaded 2-core machine takes minutes to get a dag.test() task going


@pytest.fixture(scope="module")
def dagbag(dbos_conn: str, airflow_db: object) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags" / "dbos_hitl_dags.py"))
    assert not bag.import_errors, bag.import_errors
    return bag


class Answerer(threading.Thread):
    """A person at Required Actions: scripts/demo_answer.py (what ``make demo`` runs) in its own process
    group, waiting for ``dag_id``'s request and answering it with ``body`` through Airflow's REST API.

    ``dag.test()`` must run in the main thread (it installs signal handlers) and waits for the answer
    in a loop, so the answer comes from another process, as a person's would. If no answer can be
    given, the waiting task is failed so that ``dag.test()`` ends.
    """

    def __init__(self, dag_id: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.dag_id, self.body = dag_id, body
        self.request: dict[str, Any] | None = None
        self.output = ""
        self.process: subprocess.Popen[str] | None = None

    def run(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "demo_answer.py"), self.dag_id, json.dumps(self.body)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            self.output, _ = self.process.communicate(timeout=QUESTION_TIMEOUT + 120)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.output, _ = self.process.communicate()
        for line in self.output.splitlines():
            if line.startswith("ASKED "):
                self.request = json.loads(line[len("ASKED ") :])
        if self.process.returncode != 0 or self.request is None:
            give_up(self.dag_id)

    def asked(self) -> dict[str, Any]:
        self.join(60)
        assert not self.is_alive()
        assert self.process is not None and self.process.returncode == 0, self.output
        assert self.request is not None, self.output
        return self.request


def run_answered(dag: Any, conf: dict[str, Any], answerer: Answerer | None, logical_date: Any = None) -> Any:
    if answerer is not None:
        answerer.start()
    try:
        when = logical_date or pendulum.now("UTC")
        return dag.test(run_conf=conf, logical_date=when, run_after=when)  # the run id is manual__<run_after>
    finally:
        if answerer is not None:
            answerer.join(120)  # it answered: let it exit on its own
            if answerer.process is not None and answerer.process.poll() is None:
                os.killpg(answerer.process.pid, signal.SIGKILL)  # nothing outlives the test


def give_up(dag_id: str) -> None:
    """Fail the DAG's tasks waiting for input, so that ``dag.test()`` ends."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        session.execute(
            sa.update(TaskInstance)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
            .values(state=TaskInstanceState.FAILED)
        )


def xcom(dag_id: str, run_id: str, task_id: str, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(XComModel.get_many(run_id=run_id, key=key, dag_ids=dag_id, task_ids=task_id)).first()
        return None if row is None else XComModel.deserialize_value(row)


def start(client: Any, topic: str, question: Any = None) -> str:
    from dbos import EnqueueOptions

    workflow_id = unique("approval")
    options: EnqueueOptions = {"workflow_name": "wf_approval", "queue_name": "q", "workflow_id": workflow_id}
    client.enqueue(options, "A-17", topic, question)
    return workflow_id


def test_approve_reaches_the_workflow_once_and_a_rerun_asks_nothing(dagbag: Any, client: Any) -> None:
    dag_id = "dbos_t_hitl_approval"
    workflow_id = start(client, "approval")
    when = pendulum.now("UTC").replace(microsecond=0)
    person = Answerer(dag_id, {"chosen_options": ["Approve"], "params_input": {"note": "ok by me"}})
    dr = run_answered(dagbag.get_dag(dag_id), {"workflow_id": workflow_id}, person, when)
    request, run_id = person.asked(), dr.run_id
    # The question is the workflow's own (its event), asked with the approval operator's options.
    assert request["subject"] == "Ship order A-17?"
    assert request["body"] == "Order **A-17** is ready to ship."
    assert request["options"] == ["Approve", "Reject"]
    assert "note" in request["params"]
    assert {ti.task_id: ti.state for ti in dr.get_task_instances()} == {
        "approve": "success",
        "after_approval": "success",
    }

    received = client.retrieve_workflow(workflow_id).get_result()
    assert received["chosen_options"] == ["Approve"]
    assert received["params_input"] == {"note": "ok by me"}
    assert received["responded_by"]["name"]  # who answered (the API's user)
    assert received["responded_at"] and received["timed_out"] is False
    assert messages_to(client.system_database_engine, workflow_id) == [
        (f"{dag_id}:{run_id}:approve:-1::{workflow_id}", True)
    ]
    assert xcom(dag_id, run_id, "approve", "return_value")["chosen_options"] == ["Approve"]
    record = xcom(dag_id, run_id, "approve", "dbos_hitl")
    assert record["question"]["subject"] == "Ship order A-17?" and record["answer"] == received

    # The same task instance again (the run replaced, as a clear does): the answer the workflow has
    # is replayed, nobody is asked, nothing is sent.
    dr2 = run_answered(dagbag.get_dag(dag_id), {"workflow_id": workflow_id}, None, when)
    assert dr2.run_id == run_id
    assert {ti.task_id: ti.state for ti in dr2.get_task_instances()} == {
        "approve": "success",
        "after_approval": "success",
    }
    assert len(messages_to(client.system_database_engine, workflow_id)) == 1
    assert xcom(dag_id, run_id, "approve", "return_value")["chosen_options"] == ["Approve"]


def test_reject_cancels_the_workflow_and_skips_downstream(dagbag: Any, client: Any) -> None:
    dag_id = "dbos_t_hitl_approval"
    workflow_id = start(client, "not-received")  # the workflow waits on another topic: it must be cancelled
    person = Answerer(dag_id, {"chosen_options": ["Reject"], "params_input": {"note": "no"}})
    dr = run_answered(dagbag.get_dag(dag_id), {"workflow_id": workflow_id}, person)
    person.asked()
    assert {ti.task_id: ti.state for ti in dr.get_task_instances()} == {
        "approve": "success",
        "after_approval": "skipped",
    }
    deadline = time.monotonic() + 60
    while client.retrieve_workflow(workflow_id).get_status().status != "CANCELLED":
        assert time.monotonic() < deadline, "the rejected workflow was not cancelled"
        time.sleep(0.5)
    assert len(messages_to(client.system_database_engine, workflow_id)) == 1


def test_deferred_question_with_the_workflows_options(dagbag: Any, client: Any) -> None:
    """The task defers until the workflow asks (it asks late), then asks with the workflow's options."""
    dag_id = "dbos_t_hitl_choice"
    workflow_id = unique("choice")
    from dbos import EnqueueOptions

    question = {"subject": "Which carrier?", "options": ["DHL", "UPS", "FedEx"], "multiple": True}
    options: EnqueueOptions = {"workflow_name": "wf_set_event_later", "queue_name": "q", "workflow_id": workflow_id}
    client.enqueue(options, "approval_request", question, 8.0)
    person = Answerer(dag_id, {"chosen_options": ["DHL", "FedEx"], "params_input": {}})
    dr = run_answered(dagbag.get_dag(dag_id), {"workflow_id": workflow_id}, person)
    request, run_id = person.asked(), dr.run_id
    assert request["subject"] == "Which carrier?" and request["options"] == ["DHL", "UPS", "FedEx"]
    assert [ti.state for ti in dr.get_task_instances()] == ["success"]
    assert xcom(dag_id, run_id, "choose", "dbos_hitl")["answer"]["chosen_options"] == ["DHL", "FedEx"]
    assert len(messages_to(client.system_database_engine, workflow_id)) == 1


def test_branch_and_entry_twins_send_the_choice_and_the_form_once(dagbag: Any, client: Any) -> None:
    """The branch twin runs the branch the person chose (the workflow's own options, mapped to tasks);
    the entry twin sends the form the workflow asked for. Each workflow receives one message."""
    question = {"subject": "Ship or hold order A-18?", "options": ["Ship", "Hold"]}
    routed = start(client, "route", question)
    person = Answerer("dbos_t_hitl_branch", {"chosen_options": ["Hold"], "params_input": {}})
    dr = run_answered(dagbag.get_dag("dbos_t_hitl_branch"), {"workflow_id": routed}, person)
    assert person.asked()["options"] == ["Ship", "Hold"]
    assert {ti.task_id: ti.state for ti in dr.get_task_instances()} == {
        "route": "success",
        "hold": "success",
        "ship": "skipped",
    }
    assert client.retrieve_workflow(routed).get_result()["chosen_options"] == ["Hold"]
    assert len(messages_to(client.system_database_engine, routed)) == 1

    form = {"subject": "Delivery address?", "params": {"street": {"type": "string", "default": ""}}}
    filled = start(client, "address", form)
    person = Answerer("dbos_t_hitl_entry", {"chosen_options": ["OK"], "params_input": {"street": "Main 1"}})
    dr = run_answered(dagbag.get_dag("dbos_t_hitl_entry"), {"workflow_id": filled}, person)
    request = person.asked()
    assert request["subject"] == "Delivery address?" and request["options"] == ["OK"] and "street" in request["params"]
    assert [ti.state for ti in dr.get_task_instances()] == ["success"]
    received = client.retrieve_workflow(filled).get_result()
    assert received["chosen_options"] == ["OK"] and received["params_input"] == {"street": "Main 1"}
    assert len(messages_to(client.system_database_engine, filled)) == 1
