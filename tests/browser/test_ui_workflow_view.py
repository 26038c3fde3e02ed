"""The DBOS workflow view in a real browser: `airflow api-server` with the plugin + headless Chromium.

One API server for the module, on this session's Airflow metadata DB (DAG runs come from
``dag.test()`` in this process, or ``airflow dags test`` beside it) and the tests' DBOS worker
on Postgres. Users: ``admin``, ``viewer`` (reads DAGs, edits nothing) and ``outsider`` (a
``user`` of another team: multi-team mode, the test DAGs' bundle belongs to team ``dbos_ui``).
Screenshots land in ``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
import sqlalchemy as sa
from conftest import ROOT
from dbos_orchestrator.client import DBOSClient
from dbos_testkit.child_process import ChildProcess

from browser import picture

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = ROOT / "test-artifacts"
TEAM, OTHER_TEAM = "dbos_ui", "others"
BIN = Path(sys.executable).parent
CONSOLE = "https://console.example/workflows/{workflow_id}"
TRACE = "https://traces.example/trace/{trace_id}"


class Server:
    def __init__(self, base: str, home: Path, log: Path, env: dict[str, str]) -> None:
        self.base, self.home, self.log, self.env = base, home, log, env
        self.passwords: dict[str, str] = {}

    def token(self, user: str) -> str:
        r = requests.post(
            f"{self.base}/auth/token", json={"username": user, "password": self.passwords[user]}, timeout=30
        )
        r.raise_for_status()
        return str(r.json()["access_token"])

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def dagbag(dbos_conn: str, airflow_db: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags" / "ui_workflow_view" / "dbos_ui_dags.py"))
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture(scope="module")
def server(dbos_conn: str, airflow_db: Path, system_database_url: str, postgres_server_url: str) -> Iterator[Server]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs it when it can (scripts/system_packages.sh), "
            "or run `apt-get install -y chromium` as root",
            pytrace=False,
        )
    ARTIFACTS.mkdir(exist_ok=True)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    os.environ["AIRFLOW__API__BASE_URL"] = base  # the extra link dag.test() computes in this process
    url = sa.make_url(system_database_url)
    down = {
        "conn_type": "dbos",
        "host": "127.0.0.1",
        "port": 1,
        "login": "postgres",
        "password": "s3cret-pw",
        "schema": "nowhere_dbos_sys",
        "extra": {"connect_timeout": 2},
    }
    empty = {"conn_type": "dbos", "extra": {"system_database_url": postgres_server_url}}
    console = {
        **json.loads(os.environ["AIRFLOW_CONN_DBOS_DEFAULT"]),
        "extra": {"console_url": CONSOLE, "trace_url": TRACE},
    }
    os.environ["AIRFLOW_CONN_DBOS_CONSOLE"] = json.dumps(console)  # for dag.test() and the server
    env = {
        **os.environ,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"admin:admin,viewer:viewer,outsider:user:{OTHER_TEAM}",
        "AIRFLOW__CORE__MULTI_TEAM": "True",
        "AIRFLOW_CONN_DBOS_DOWN": json.dumps(down),
        "AIRFLOW_CONN_DBOS_EMPTY": json.dumps(empty),
        "AIRFLOW_CONN_PLAIN_POSTGRES": postgres_server_url,
        "PYTHONUNBUFFERED": "1",
    }
    assert url.database
    from airflow.models.team import Team
    from airflow.utils.session import create_session

    with create_session() as session:  # multi-team mode wants the users' teams in the DB first
        for name in (TEAM, OTHER_TEAM):
            session.merge(Team(name=name))
    log = airflow_db / "api-server.log"
    proc = ChildProcess("api-server", [str(BIN / "airflow"), "api-server", "-w", "1", "-p", str(port)], env, log)
    srv = Server(base, airflow_db, log, env)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or proc.proc.poll() is not None:
                pytest.fail(f"api-server did not start:\n{srv.tail()}", pytrace=False)
            time.sleep(0.5)
        srv.passwords = json.loads((airflow_db / "simple_auth_manager_passwords.json.generated").read_text())
        yield srv
    finally:
        proc.stop(grace=10)


@pytest.fixture
def page(server: Server, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A Chromium page logged in as admin; a screenshot of its last state goes to test-artifacts/."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(30_000)
        pg = context.new_page()
        pg.goto(f"{server.base}/")
        pg.get_by_label("Username").fill("admin")
        pg.get_by_label("Password").fill(server.passwords["admin"])
        pg.get_by_role("button", name="Sign in").click()
        pg.wait_for_url(f"{server.base}/", timeout=60_000)
        try:
            yield pg
        finally:
            pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
            browser.close()


def ti_view(server: Server, dag_id: str, task_id: str, run_id: str, map_index: int = -1) -> str:
    return f"{server.base}/dbos/ti/{dag_id}/{task_id}/{map_index}/{quote(run_id, safe='')}"


def wait_status(client: DBOSClient, wid: str, wanted: set[str], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        rows = client.list_workflows(workflow_ids=[wid], load_input=False, load_output=False)
        if rows and rows[0].status in wanted:
            return rows[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"{wid}: {rows and rows[0].status} after {timeout}s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def steps_run(dagbag: Any, server: Server) -> Any:
    """One successful run of dbos_ui_steps (a three-step workflow)."""
    dr = dagbag.get_dag("dbos_ui_steps").test()
    assert dr.state == "success"
    return dr


def test_tab_shows_the_steps_and_the_extra_link_resolves(server: Server, steps_run: Any, page: Any) -> None:
    run_id, wid = steps_run.run_id, f"dbos_ui_steps:{steps_run.run_id}:steps:-1"
    page.goto(f"{server.base}/dags/dbos_ui_steps/runs/{quote(run_id, safe='')}/tasks/steps")
    page.get_by_text("DBOS workflow", exact=True).click()  # the plugin's tab
    frame = page.frame_locator("iframe[title='DBOS workflow']")
    frame.locator("#dbos-steps tr.step").nth(2).wait_for()
    assert frame.locator("#dbos-status").inner_text() == "SUCCESS"
    text = frame.locator("#dbos-body").inner_text()
    assert wid in text and "wf_steps" in text and "test-worker" in text
    assert [frame.locator("#dbos-steps tr.step td").nth(i * 8 + 1).inner_text() for i in range(3)] == ["ui_step"] * 3
    assert '"step3_runs": 1' in text  # the output, decoded from portable JSON
    event = frame.locator("table.kv", has_text="done").inner_text()  # the event, decoded
    assert event.split() == ["done", "{", '"steps":', "3", "}"], event
    assert frame.locator("#dbos-steps tr.step td:nth-child(6)").first.inner_text() == "pickled, not decoded"
    page.set_viewport_size({"width": 1400, "height": 1500})  # the iframe grows: steps and timeline in view
    frame.locator("#dbos-steps").scroll_into_view_if_needed()
    page.screenshot(path=str(picture("dbos-workflow-tab.png")))

    # The extra links were computed at task finalize and are served from XCom.
    headers = {"Authorization": f"Bearer {server.token('admin')}"}
    links = requests.get(
        f"{server.base}/api/v2/dags/dbos_ui_steps/dagRuns/{quote(run_id, safe='')}/taskInstances/steps/links",
        headers=headers,
        timeout=30,
    ).json()["extra_links"]
    assert links["DBOS workflow"] == ti_view(server, "dbos_ui_steps", "steps", run_id), links
    page.goto(links["DBOS workflow"])
    assert page.locator("#dbos-status").inner_text() == "SUCCESS"


def test_a_traced_workflow_shows_its_trace(server: Server, page: Any, client: DBOSClient) -> None:
    """docs/observability.md, "What you see": a workflow enqueued while a sampled span was current names that
    trace in its view, linked through the connection's ``trace_url``; the picture is docs/images/dbos-workflow-trace.png."""
    from opentelemetry.sdk.trace import TracerProvider

    wid = f"traced-{time.time_ns()}"
    with TracerProvider().get_tracer("airflow").start_as_current_span("worker.enqueue") as span:
        client.enqueue({"workflow_name": "wf_steps", "queue_name": "q", "workflow_id": wid}, wid)
    trace_id = format(span.get_span_context().trace_id, "032x")
    wait_status(client, wid, {"SUCCESS"})
    page.goto(f"{server.base}/dbos/workflow?conn_id=dbos_console&id={quote(wid, safe='')}")
    link = page.locator("#dbos-trace a")
    assert link.inner_text() == trace_id
    assert link.get_attribute("href") == TRACE.replace("{trace_id}", trace_id)
    page.locator("#dbos-steps tr.step").nth(2).wait_for()
    page.screenshot(path=str(picture("dbos-workflow-trace.png")))


def test_fork_from_step_2_does_not_rerun_step_1(server: Server, steps_run: Any, page: Any, client: DBOSClient) -> None:
    run_id, wid = steps_run.run_id, f"dbos_ui_steps:{steps_run.run_id}:steps:-1"
    page.goto(ti_view(server, "dbos_ui_steps", "steps", run_id))
    page.locator("#action-fork-2").click()
    assert "from step 2" in page.locator("#confirm-text").inner_text()
    page.locator("#confirm-yes").click()
    page.locator("#new-workflow").wait_for()
    assert "Forked" in page.locator("#dbos-msg").inner_text()
    new_id = page.locator("#new-workflow").inner_text().replace("open", "").strip()
    status = wait_status(client, new_id, {"SUCCESS"})
    assert status.forked_from == wid
    assert client.retrieve_workflow(new_id).get_result() == {"step1_runs": 1, "step2_runs": 2, "step3_runs": 2}
    page.locator("#new-workflow").click()  # the fork's own view, reachable from this task instance
    page.locator("#dbos-steps tr.step").nth(2).wait_for()
    assert new_id in page.locator("h2").inner_text()
    with sqlite3.connect(server.home / "airflow.db") as db:
        rows = db.execute("SELECT owner, extra FROM log WHERE event = 'dbos.fork' AND run_id = ?", (run_id,)).fetchall()
    assert rows and rows[-1][0] == "admin" and wid in rows[-1][1]


def test_cancel_from_the_view_fails_the_waiting_task(
    server: Server, page: Any, client: DBOSClient, tmp_path: Path
) -> None:
    # The run's output goes to a file: a pipe nobody reads while the test polls fills up (64 KiB of
    # DAG-parsing lines) and blocks `airflow dags test` before it runs the task.
    log_path = tmp_path / "dags-test.log"
    log = log_path.open("w")
    run = subprocess.Popen(
        [str(BIN / "airflow"), "dags", "test", "dbos_ui_wait"],
        env=server.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = ""
    try:
        deadline = time.monotonic() + 90
        while not (
            rows := client.list_workflows(
                workflow_id_prefix="dbos_ui_wait:", status="PENDING", load_input=False, load_output=False
            )
        ):
            if time.monotonic() >= deadline or run.poll() is not None:
                if run.poll() is None:
                    run.kill()
                seen = client.list_workflows(workflow_id_prefix="dbos_ui_wait:", load_input=False, load_output=False)
                run.wait(timeout=30)
                output = log_path.read_text()
                raise AssertionError(
                    f"the waiting task's workflow was not PENDING within 90 s (workflows: "
                    f"{[(w.workflow_id, w.status) for w in seen]}); `airflow dags test` said:\n{output[-3000:]}"
                )
            time.sleep(0.5)
        wid = rows[0].workflow_id
        run_id = wid[len("dbos_ui_wait:") : -len(":wait:-1")]
        page.goto(ti_view(server, "dbos_ui_wait", "wait", run_id))
        assert page.locator("#dbos-status").inner_text() == "PENDING"
        page.locator("#action-cancel").click()
        page.locator("#confirm-yes").click()
        page.locator("#dbos-msg.ok").wait_for()
        page.locator("#dbos-status:text('CANCELLED')").wait_for(timeout=10_000)  # polling refreshed the view
        run.wait(timeout=120)
        output = log_path.read_text()
    finally:
        if run.poll() is None:
            run.kill()
        log.close()
    with sqlite3.connect(server.home / "airflow.db") as db:
        [(state,)] = db.execute(
            "SELECT state FROM task_instance WHERE dag_id = 'dbos_ui_wait' AND run_id = ?", (run_id,)
        ).fetchall()
    assert state == "failed", output[-3000:]
    failure = [line for line in output.splitlines() if "DBOSWorkflowFailedError" in line]
    assert failure and "ended CANCELLED" in failure[-1] and wid in failure[-1], output[-3000:]


def test_errors_are_one_line_messages_naming_the_connection(server: Server, page: Any) -> None:
    page.goto(f"{server.base}/dbos/workflows?conn_id=dbos_down")
    text = page.locator("#dbos-error").inner_text()
    assert text.startswith("connection 'dbos_down': cannot connect to the DBOS system database at 127.0.0.1:1/"), text
    assert "s3cret-pw" not in page.content()
    page.goto(f"{server.base}/dbos/workflows?conn_id=dbos_empty")
    assert "no DBOS system tables" in page.locator("#dbos-error").inner_text()
    page.goto(f"{server.base}/dbos/workflow?conn_id=dbos_default&id=no-such-workflow")
    assert "no DBOS workflow with id 'no-such-workflow'" in page.locator("#dbos-error").inner_text()
    page.goto(f"{server.base}/dbos/workflows?conn_id=plain_postgres")  # never used with another type's credentials
    assert page.locator("#dbos-error").inner_text() == (
        "conn_id: connection 'plain_postgres' is of type 'postgres', not 'dbos'"
    )
    page.goto(f"{server.base}/dbos/workflows?conn_id=nobody_defined_this")
    assert "'nobody_defined_this'" in page.locator("#dbos-error").inner_text()
    assert "Traceback" not in page.content()


def test_nav_page_lists_filters_and_links_to_the_task(server: Server, steps_run: Any, page: Any) -> None:
    page.goto(f"{server.base}/dbos/workflows?name=wf_steps")
    table = page.locator("#dbos-workflows")
    wid = f"dbos_ui_steps:{steps_run.run_id}:steps:-1"
    row = table.locator("tr.wf", has_text=wid)
    assert row.locator("a", has_text="task instance").get_attribute("href") == (
        f"/dags/dbos_ui_steps/runs/{quote(steps_run.run_id, safe='')}/tasks/steps"
    )
    assert all(n == "wf_steps" for n in table.locator("tr.wf td:nth-child(3)").all_inner_texts())
    row.locator("a").first.click()
    assert page.locator("#dbos-status").inner_text() == "SUCCESS"

    # Inside Airflow's shell (the "DBOS" menu entry), the task link leaves the iframe for the task page.
    page.goto(f"{server.base}/plugin/dbos")
    frame = page.frame_locator("iframe[title='DBOS']")
    frame.locator("#dbos-workflows").wait_for()
    page.screenshot(path=str(ARTIFACTS / "dbos-nav-page.png"), full_page=True)
    frame.locator("input[name=id_prefix]").fill("dbos_ui_steps:")
    frame.get_by_role("button", name="Filter").click()
    frame.locator("tr.wf", has_text=wid).locator("a", has_text="task instance").click()
    page.wait_for_url("**/dags/dbos_ui_steps/runs/**/tasks/steps", wait_until="commit", timeout=15_000)
    page.get_by_text("DBOS workflow", exact=True).wait_for()  # Airflow's task page, not the iframe


def test_permissions(server: Server, steps_run: Any) -> None:
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.team import Team
    from airflow.utils.session import create_session

    view = ti_view(server, "dbos_ui_steps", "steps", steps_run.run_id)
    wid = f"dbos_ui_steps:{steps_run.run_id}:steps:-1"
    body = {"action": "cancel", "workflow_id": wid}
    csrf = {"X-DBOS-Airflow": "1"}

    anon = requests.get(view, timeout=30)
    assert anon.status_code in (401, 403) and wid not in anon.text
    assert requests.post(view, json=body, headers=csrf, timeout=30).status_code in (401, 403)
    assert requests.get(f"{server.base}/dbos/workflows", timeout=30).status_code in (401, 403)

    # The simple auth manager lets only ops read connections, yet a viewer of the DAG reads the workflow
    # DBOS records as this task instance's, as its logs (docs/ui.md, "Permissions"); acting needs edit.
    viewer = {"Authorization": f"Bearer {server.token('viewer')}"}
    seen = requests.get(view, headers=viewer, timeout=30)
    assert seen.status_code == 200 and wid in seen.text, seen.status_code
    assert requests.post(view, json=body, headers={**viewer, **csrf}, timeout=30).status_code == 403
    listing = requests.get(f"{server.base}/dbos/workflows", headers=viewer, timeout=30)
    assert listing.status_code == 403 and "dbos_default" in listing.text  # listing still needs the connection

    admin = {"Authorization": f"Bearer {server.token('admin')}"}
    assert requests.post(view, json=body, headers=admin, timeout=30).status_code == 403  # no CSRF header
    evil = {**admin, **csrf, "Origin": "https://evil.example"}
    assert requests.post(view, json=body, headers=evil, timeout=30).status_code == 403
    ok = requests.post(view, json=body, headers={**admin, **csrf}, timeout=30)
    assert ok.status_code == 409 and "already ended SUCCESS" in ok.json()["detail"]  # allowed, nothing to cancel

    # The test DAGs' bundle now belongs to a team the outsider is not in: no access at all. (A DAG
    # the server never looked at: it caches each DAG's team, and dag.test() resets bundle teams.)
    with create_session() as session:
        team = session.get(Team, TEAM)
        bundle = session.get(DagBundleModel, "test-dags")
        assert bundle is not None
        if team not in bundle.teams:
            bundle.teams.append(team)
    outsider = {"Authorization": f"Bearer {server.token('outsider')}"}
    private = ti_view(server, "dbos_ui_private", "private", steps_run.run_id)
    denied = requests.get(private, headers=outsider, timeout=30)
    assert denied.status_code == 403 and "DBOS" not in denied.text
    assert requests.post(private, json=body, headers={**outsider, **csrf}, timeout=30).status_code == 403
    assert requests.get(private, headers=admin, timeout=30).status_code == 200  # the same URL, for someone allowed


@pytest.fixture(scope="module")
def shapes_run(dagbag: Any, server: Server) -> Any:
    dr = dagbag.get_dag("dbos_ui_shapes").test()
    assert dr.state == "success", [(ti.task_id, ti.state) for ti in dr.get_task_instances()]
    return dr


def test_each_task_shape_maps_to_its_own_workflows(server: Server, shapes_run: Any) -> None:
    run_id = shapes_run.run_id
    admin = {"Authorization": f"Bearer {server.token('admin')}"}

    def view(task_id: str, map_index: int = -1, **params: str) -> str:
        r = requests.get(
            ti_view(server, "dbos_ui_shapes", task_id, run_id, map_index), params=params, headers=admin, timeout=30
        )
        assert r.status_code == 200, r.text
        return r.text

    explicit = f"ui-explicit-{run_id}"
    assert explicit in view("explicit") and "42" in view("explicit")
    assert explicit in view("sensor")  # the sensor's rendered workflow_id
    for index, output in ((0, "2"), (1, "4")):  # each mapped instance shows its own workflow
        page = view("mapped", index)
        assert f"dbos_ui_shapes:{run_id}:mapped:{index}" in page and f"<pre>{output}</pre>" in page
    bulk_ids = [f"dbos_ui_shapes:{run_id}:bulk:-1:{i}" for i in range(3)]
    listing = view("bulk")
    assert "3 DBOS workflows" in listing and all(w in listing for w in bulk_ids)
    assert "3/3 ended: 3 SUCCESS; 0 pending" in listing and "page 1 of 1" in listing  # docs/batch.md, Progress
    assert [listing.index(w) for w in bulk_ids] == sorted(listing.index(w) for w in bulk_ids)  # item order
    assert bulk_ids[1] in view("bulk", workflow_id=bulk_ids[1])
    pickled = view("pickled")
    assert "pickled, not decoded" in pickled and "secret" not in pickled  # never unpickled
    other = requests.get(
        ti_view(server, "dbos_ui_shapes", "explicit", run_id),
        params={"workflow_id": bulk_ids[0]},
        headers=admin,
        timeout=30,
    )
    assert other.status_code == 403 and "was not started by this task instance" in other.text

    links = requests.get(
        f"{server.base}/api/v2/dags/dbos_ui_shapes/dagRuns/{quote(run_id, safe='')}/taskInstances/explicit/links",
        headers=admin,
        timeout=30,
    ).json()["extra_links"]
    assert links["DBOS console"] == CONSOLE.replace("{workflow_id}", quote(explicit, safe=""))

    # The DBOS page links bulk ids (derived) and explicit ids (found in XCom) to their task instance.
    page = requests.get(f"{server.base}/dbos/workflows", params={"name": "wf_double"}, headers=admin, timeout=30).text
    runs = f"/dags/dbos_ui_shapes/runs/{quote(run_id, safe='')}/tasks"
    assert (
        f'href="{runs}/bulk"' in page and f'href="{runs}/explicit"' in page and f'href="{runs}/mapped/mapped/1"' in page
    )
