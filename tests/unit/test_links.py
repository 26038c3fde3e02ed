"""The DBOS operators' extra links (dbos_airflow/links.py; docs/ui.md): the view's path for a task instance,
the XCom they are built from, the console link only for a connection that names a console."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from dbos_airflow.links import (
    CONN_ID_KEY,
    WORKFLOW_ID_KEY,
    DBOSConsoleLink,
    DBOSWorkflowLink,
    console_template,
    remember_workflow,
    view_path,
)


def test_the_view_path_quotes_every_part() -> None:
    assert view_path("etl", "manual__2026-01-01T00:00:00+00:00", "enqueue", -1) == (
        "/dbos/ti/etl/enqueue/-1/manual__2026-01-01T00%3A00%3A00%2B00%3A00"
    )
    assert view_path("a/b", "r 1", "t?x", 3) == "/dbos/ti/a%2Fb/t%3Fx/3/r%201"  # no part escapes its segment


def test_the_workflow_link_is_the_view_under_the_api_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example/")
    key: Any = SimpleNamespace(dag_id="etl", run_id="r1", task_id="enqueue", map_index=2)
    assert DBOSWorkflowLink().get_link(object(), ti_key=key) == "https://airflow.example/dbos/ti/etl/enqueue/2/r1"


def test_remember_workflow_pushes_the_connection_and_the_single_workflow() -> None:
    pushed: list[tuple[str, object]] = []
    ti = SimpleNamespace(xcom_push=lambda key, value: pushed.append((key, value)))
    context: Any = {"ti": ti}
    remember_workflow(context, "dbos_default", "w1")
    remember_workflow(context, "dbos_default")  # a bulk enqueue: no single id
    assert pushed == [(CONN_ID_KEY, "dbos_default"), (WORKFLOW_ID_KEY, "w1"), (CONN_ID_KEY, "dbos_default")]


def test_the_console_link_needs_a_console_url_on_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    with_console = {"conn_type": "dbos", "extra": {"console_url": "https://console.example/wf/{workflow_id}"}}
    monkeypatch.setenv("AIRFLOW_CONN_DBOS_WITH_CONSOLE", json.dumps(with_console))
    monkeypatch.setenv("AIRFLOW_CONN_DBOS_PLAIN", json.dumps({"conn_type": "dbos", "extra": {}}))
    assert console_template("dbos_with_console") == "https://console.example/wf/{workflow_id}"
    assert console_template("dbos_plain") is None
    key: Any = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1)
    # No console on the connection (or no connection on the operator): no link, and no XCom read at all.
    plain: Any = SimpleNamespace(dbos_conn_id="dbos_plain")
    assert DBOSConsoleLink().get_link(plain, ti_key=key) == ""
    assert DBOSConsoleLink().get_link(object(), ti_key=key) == ""
