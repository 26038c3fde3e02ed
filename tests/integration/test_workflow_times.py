"""The DBOS view shows a workflow's times as its system database knows them (docs/ui.md, "Times"):
a real DBOS worker on an embedded SQLite database (DBOS keeps its workflow times there to the
second) and on this session's Postgres (to the millisecond), read through a DBOSHook."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Worker, connection_json, unique

from dbos_airflow.hooks.dbos import DBOSHook
from dbos_airflow.plugin import data, records, render


def _run_and_render(conn_id: str) -> tuple[Any, data.WorkflowDetail, dict[str, str], list[str]]:
    """Run a workflow of 2 steps 0.1 s apart; its status, detail, the view's facts table and its
    created and ended cells on the DBOS page."""
    with DBOSHook(conn_id) as hook:
        wid = unique("times")
        handle = hook.enqueue({"queue_name": "q", "workflow_name": "wf_counted_steps", "workflow_id": wid}, 2, 0.1)
        assert handle.get_result() == 1
        status = data.status_of(hook, wid)
        assert status is not None
        detail = data.workflow_detail(hook, status)
        html = render.workflow_page(detail, lambda w: w, can_act=False, task_link=None, static="")
        listing = render.list_page(
            conn_id,
            [status],
            records.Filters(),
            base="",
            view_link=lambda w: w,
            page_link=str,
            has_next=False,
            task_links={},
            static="",
            clock=data.clock_of(hook),
        )
    facts = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)</td></tr>", html))
    cells = re.findall(r"<td>(\d{4}-[^<]*)</td>", listing)
    assert len(cells) == 2, cells
    return status, detail, facts, cells


def _seconds(text: str) -> float:
    number, unit = text.split()
    return float(number) * (60 if unit == "min" else 1)


def test_sqlite_times_are_to_the_second_and_the_duration_a_true_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "times.sqlite"
    worker = Worker(f"sqlite:///{db}", ROOT / "tests" / "dbos_app.py", executor_id="sqlite-times-worker")
    try:
        worker.wait_ready()
        url = f"sqlite:///{db}"
        monkeypatch.setenv(
            "AIRFLOW_CONN_DBOS_TIMES", json.dumps({"conn_type": "dbos", "extra": {"system_database_url": url}})
        )
        status, detail, facts, cells = _run_and_render("dbos_times")
    finally:
        worker.stop()
    # What DBOS wrote (its app on Python 3.11): whole seconds for the workflow, milliseconds for steps.
    assert status.created_at % 1000 == 0 and status.completed_at % 1000 == 0, (status.created_at, status.completed_at)
    assert facts["created"].endswith(" UTC (to the second)") and facts["ended"].endswith(" UTC (to the second)")
    assert ".000 UTC" not in facts["created"] + facts["ended"]
    assert cells == [facts["created"], facts["ended"]]  # the DBOS page says the same
    shortest, _, rest = facts["duration"].partition(" to ")
    longest, _, note = rest.partition(" (")
    assert note == "times kept to the second)", facts["duration"]
    # The steps ran for at least their own span (two steps and the 0.1 s sleep between them):
    # the range holds it, and is never the "0.000 s" of subtracting two cut-down seconds.
    steps = [s for s in detail.steps if s.started_at_ms is not None and s.completed_at_ms is not None]
    span = (max(s.completed_at_ms for s in steps) - min(s.started_at_ms for s in steps)) / 1000
    assert span >= 0.1
    assert span <= _seconds(shortest) <= _seconds(longest), (facts["duration"], span)
    assert _seconds(longest) - _seconds(shortest) < 2


def test_postgres_times_keep_their_milliseconds(
    system_database_url: str, dbos_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DBOS_TIMES_PG", connection_json(system_database_url))
    status, _, facts, cells = _run_and_render("dbos_times_pg")
    assert "to the second" not in "".join(facts.values()) + "".join(cells)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC", facts["ended"]), facts["ended"]
    assert _seconds(facts["duration"]) == (status.completed_at - status.created_at) / 1000
