"""The UI path, in a real browser: `airflow standalone` + the example worker, driven by headless Chromium.

A person opens the ``dbos_run_workflow`` DAG, fills its trigger form, submits it, and the DBOS
workflow runs with exactly those arguments; the ``dbos`` connection form shows the DBOS fields, and a
connection saved from it (Postgres fields, or only a System database URL) passes its Test button.
A person answers a DBOS workflow's question in Required Actions ("Approve", once "Reject") and the
workflow receives it once, also across a clear (docs/approvals.md). Screenshots land in each test's
tmp dir; the Required Action's in test-artifacts/ (docs/images/ with DBOS_AIRFLOW_DOCS_IMAGES=1). Needs
/usr/bin/chromium (``apt-get install -y chromium``; ``.ci/run`` installs it) and the ``playwright``
Python package (test extra).
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from dbos_orchestrator.client import DBOSClient
from dbos_testkit import local_stack
from dbos_testkit.notifications import messages_to

from browser import picture
from dbos_airflow.get_provider_info import get_provider_info  # noqa: E402

if TYPE_CHECKING:
    from conftest import Worker

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DAG_ID = "dbos_run_workflow"


@dataclass
class Stack:
    base_url: str
    password: str
    airflow_home: Path
    system_database_url: str
    logs: tuple[Path, ...]

    def log_tails(self, lines: int = 40) -> str:
        out = []
        for log in self.logs:
            text = log.read_text(errors="replace").splitlines() if log.exists() else []
            out.append(f"--- {log} (last {lines} lines)\n" + "\n".join(text[-lines:]))
        return "\n".join(out)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Example worker on a SQLite system DB + `airflow standalone` on a free loopback port."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium when it can "
            "(scripts/system_packages.sh), or run `apt-get install -y chromium` as root",
            pytrace=False,
        )
    root = tmp_path_factory.mktemp("ui-stack")
    url = f"sqlite:///{root / 'dbos.sqlite'}"
    port = local_stack.free_port()
    home = root / "airflow"
    worker = local_stack.start_worker(url, root / "worker.log")
    web = local_stack.start_standalone(home, url, port, root / "standalone.log")
    stack = Stack(f"http://127.0.0.1:{port}", "", home, url, (root / "standalone.log", root / "worker.log"))
    try:
        local_stack.wait_http(f"{stack.base_url}/api/v2/monitor/health", timeout=420)  # a loaded 2-core machine
        stack.password = local_stack.admin_password(home)
    except RuntimeError as exc:
        web.stop(grace=20)
        worker.stop()
        pytest.fail(f"the local stack did not start: {exc}\n{stack.log_tails()}", pytrace=False)
    try:
        yield stack
    finally:
        web.stop(grace=20)
        worker.stop()


@pytest.fixture
def page(stack: Stack, tmp_path: Path) -> Iterator[Any]:
    """A logged-in Chromium page; a screenshot of the final state is kept as tmp_path/final.png."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.base_url)
        context.set_default_timeout(30_000)
        page = context.new_page()
        page.goto(f"{stack.base_url}/")
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(stack.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{stack.base_url}/", timeout=60_000)
        try:
            yield page
        finally:
            page.screenshot(path=str(tmp_path / "final.png"), full_page=True)
            browser.close()


def _paste_json(page: Any, editor_selector: str, value: Any) -> None:
    """Replace a JSON editor's text the way a person pastes it (typing would auto-close brackets).

    A person looks before submitting: on a busy machine the editor may take the keys before it has
    focus, so the paste is checked against the editor's text and done again (three times at most).
    """
    wanted = re.sub(r"\s", "", json.dumps(value))
    shown = ""
    for _ in range(3):
        page.evaluate("text => navigator.clipboard.writeText(text)", json.dumps(value))
        page.locator(editor_selector).click()
        page.keyboard.press("Control+A")
        page.keyboard.press("Control+V")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            # Monaco: the code lines only (its margin holds the line numbers); \s also takes its nbsp
            text = page.locator(editor_selector).evaluate("e => (e.querySelector('.view-lines') || e).innerText")
            shown = re.sub(r"\s", "", text)
            if shown == wanted:
                return
            time.sleep(0.2)
    pytest.fail(f"the JSON editor {editor_selector} shows {shown!r}, not the pasted {wanted!r}")


def _dag_run(stack: Stack, run_id: str) -> tuple[str, dict[str, Any]] | None:
    with sqlite3.connect(stack.airflow_home / "airflow.db", timeout=30) as db:
        row = db.execute("SELECT state, conf FROM dag_run WHERE dag_id = ? AND run_id = ?", (DAG_ID, run_id)).fetchone()
    return None if row is None else (str(row[0]), json.loads(row[1] or "{}"))


def _wait_for_run(stack: Stack, run_id: str, timeout: float = 180) -> tuple[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        run = _dag_run(stack, run_id)
        if run is not None and run[0] in ("success", "failed"):
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"DAG run {run_id} still {run and run[0]} after {timeout:.0f}s\n{stack.log_tails()}")
        time.sleep(1)


def _submit_form(page: Any, stack: Stack, tmp_path: Path, fields: dict[str, str], args: list[Any]) -> str:
    """Open the DAG's trigger form, fill it, submit it; return the new run id (from the page it opens)."""
    page.goto(f"{stack.base_url}/dags/{DAG_ID}")
    page.get_by_test_id("trigger-dag-button").click(timeout=90_000)  # the DAG may still be being parsed
    for name, value in fields.items():
        page.locator(f"#element_{name}, input[name='element_{name}']").first.fill(value)
    _paste_json(page, "#element_args", args)
    page.screenshot(path=str(tmp_path / "trigger-form.png"), full_page=True)
    page.get_by_test_id("trigger-dag-submit").click()
    page.wait_for_url(f"**/dags/{DAG_ID}/runs/**", timeout=30_000)
    run_id = page.url.split("/runs/", 1)[1].split("?", 1)[0]
    from urllib.parse import unquote

    return unquote(run_id)


def test_trigger_form_runs_the_workflow_with_the_typed_arguments(stack: Stack, page: Any, tmp_path: Path) -> None:
    workflow_id = f"ui-{secrets.token_hex(4)}"
    order = {
        "order_id": f"UI-{secrets.token_hex(2)}",
        "items": [{"sku": "gizmo", "qty": 3}, {"sku": "widget", "qty": 2}],
    }
    fields = {"workflow_name": "quote_order", "queue_name": "orders", "workflow_id": workflow_id, "timeout": "120"}

    run_id = _submit_form(page, stack, tmp_path, fields, [order])

    state, conf = _wait_for_run(stack, run_id)
    page.reload()
    page.screenshot(path=str(tmp_path / "run.png"), full_page=True)
    assert state == "success", f"DAG run {run_id} ended {state}\n{stack.log_tails()}"
    assert page.get_by_text("Success").first.is_visible()
    # What the form sent is what the run got.
    assert conf["workflow_id"] == workflow_id and conf["args"] == [order] and conf["timeout"] == 120
    # And DBOS ran that workflow with exactly those arguments.
    client = DBOSClient(system_database_url=stack.system_database_url, retry_connection_errors=False)
    try:
        [status] = client.list_workflows(workflow_ids=[workflow_id])
    finally:
        client.destroy()
    assert (status.status, status.name, status.queue_name) == ("SUCCESS", "quote_order", "orders")
    assert status.input is not None and list(status.input["args"]) == [order]
    assert status.output["order_id"] == order["order_id"]
    assert status.output["subtotal"] == 3 * 40.0 + 2 * 2.5


def test_trigger_form_run_fails_when_the_workflow_fails(stack: Stack, page: Any, tmp_path: Path) -> None:
    workflow_id = f"ui-fail-{secrets.token_hex(4)}"
    fields = {"workflow_name": "refund_order", "queue_name": "orders", "workflow_id": workflow_id, "timeout": "120"}

    run_id = _submit_form(page, stack, tmp_path, fields, ["R-9", 250])

    state, conf = _wait_for_run(stack, run_id)
    assert conf["args"] == ["R-9", 250], conf  # what the form sent is what the run got
    page.reload()
    page.screenshot(path=str(tmp_path / "run.png"), full_page=True)
    assert state == "failed"
    assert page.get_by_text("Failed").first.is_visible()
    client = DBOSClient(system_database_url=stack.system_database_url, retry_connection_errors=False)
    try:
        [status] = client.list_workflows(workflow_ids=[workflow_id])
    finally:
        client.destroy()
    assert status.status == "ERROR"
    assert "exceeds the 100.00 limit" in str(status.error)


def test_connection_form_shows_the_dbos_fields(stack: Stack, page: Any, tmp_path: Path) -> None:
    [conn_type] = get_provider_info()["connection-types"]
    page.goto(f"{stack.base_url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    page.get_by_role("combobox").click()
    page.keyboard.type(conn_type["hook-name"])
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    behaviour = conn_type["ui-field-behaviour"]
    standard = dialog.get_by_text(behaviour["relabeling"]["schema"])
    standard.wait_for()
    assert dialog.get_by_placeholder(behaviour["placeholders"]["schema"]).is_visible()
    page.screenshot(path=str(tmp_path / "connection-form-standard.png"), full_page=True)
    dialog.get_by_text("Extra Fields", exact=True).click()
    page.screenshot(path=str(tmp_path / "connection-form-extra.png"), full_page=True)
    text = dialog.inner_text()
    for name, spec in conn_type["conn-fields"].items():
        assert spec["label"] in text, f"connection form lacks the {name!r} field ({spec['label']!r}):\n{text}"


def _add_connection(
    page: Any, stack: Stack, tmp_path: Path, conn_id: str, standard: dict[str, str], extra: dict[str, str]
) -> Any:
    """Fill the Add Connection form of type DBOS the way a person does, save it; return its row in the list."""
    [conn_type] = get_provider_info()["connection-types"]
    labels = conn_type["ui-field-behaviour"]["relabeling"]
    page.goto(f"{stack.base_url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(conn_id)
    dialog.get_by_role("combobox").click()
    page.keyboard.type(conn_type["hook-name"])
    page.keyboard.press("Enter")
    dialog.get_by_text(labels["schema"]).wait_for()
    for field, value in standard.items():
        dialog.get_by_label(labels.get(field, field.capitalize()), exact=True).fill(value)
    if extra:
        dialog.get_by_text("Extra Fields", exact=True).click()
        for name, value in extra.items():
            dialog.get_by_text(conn_type["conn-fields"][name]["label"], exact=True).wait_for()
            dialog.locator(f"#element_{name}, input[name='element_{name}']").first.fill(value)
    page.screenshot(path=str(tmp_path / f"{conn_id}-form.png"), full_page=True)
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="detached")
    row = page.get_by_role("row").filter(has_text=conn_id)
    row.wait_for()
    return row


def _test_button(page: Any, row: Any) -> tuple[bool, str, int, str]:
    """Click the row's Test Connection button: (toast says success?, toast text, HTTP status, API message)."""
    with page.expect_response("**/api/v2/connections/test") as answer:
        row.get_by_role("button", name="Test Connection").click()
    response = answer.value
    body = response.json()
    toast = page.get_by_text(re.compile("^Test Connection (Successful|Failed)$")).last
    toast.wait_for()
    title = toast.inner_text()
    text = page.locator("[data-scope=toast][data-part=root]").filter(has_text=title).last.inner_text()
    return title.endswith("Successful"), text, response.status, str(body.get("message") or body.get("detail"))


def test_connection_form_test_button_passes_for_both_forms(
    stack: Stack, page: Any, tmp_path: Path, system_database_url: str, dbos_worker: Worker
) -> None:
    """Postgres fields, then only a System database URL (the SQLite file of `make airflow`): Test succeeds."""
    suffix = secrets.token_hex(3)
    pg = sa.make_url(system_database_url)
    standard = {"host": pg.host or "localhost", "port": str(pg.port or 5432), "login": pg.username or ""}
    if pg.password:
        standard["password"] = pg.password
    standard["schema"] = pg.database or ""
    row = _add_connection(page, stack, tmp_path, f"dbos_ui_pg_{suffix}", standard, {})
    ok, text, status, message = _test_button(page, row)
    page.screenshot(path=str(tmp_path / "test-postgres.png"), full_page=True)
    assert ok and status == 200, (status, message, text)
    assert f"Connected to {pg.host}:{pg.port or 5432}/{pg.database}" in message
    assert message.replace("\n", " ") in text.replace("\n", " ")

    sqlite_path = sa.make_url(stack.system_database_url).database
    row = _add_connection(
        page,
        stack,
        tmp_path,
        f"dbos_ui_url_{suffix}",
        {"port": "5432"},
        {"system_database_url": stack.system_database_url},
    )
    ok, text, status, message = _test_button(page, row)
    page.screenshot(path=str(tmp_path / "test-url.png"), full_page=True)
    assert ok and status == 200, (status, message, text)
    assert f"Connected to {sqlite_path}" in message


def test_test_button_of_a_connection_saved_without_a_port(stack: Stack, page: Any, tmp_path: Path) -> None:
    """Why the form asks for a port: Airflow 3.3.2's Test button posts an empty stored port as 0, which the API
    refuses (fixed upstream by apache/airflow#73298). When this fails, Airflow fixed it: drop the port advice
    from get_provider_info's relabeling and the README."""
    row = _add_connection(
        page,
        stack,
        tmp_path,
        f"dbos_ui_noport_{secrets.token_hex(3)}",
        {},
        {"system_database_url": stack.system_database_url},
    )
    ok, text, status, message = _test_button(page, row)
    page.screenshot(path=str(tmp_path / "test-noport.png"), full_page=True)
    assert not ok and status == 400, (status, message, text)
    assert message.startswith("The host or port to test differs from the stored connection"), message


# -- Approvals (docs/approvals.md): the flagship DAG asks in Required Actions, a person clicks ------------

APPROVAL_DAG = "dbos_order_approval"


def _api(stack: Stack, method: str, path: str, **kwargs: Any) -> Any:
    """The public REST API as admin (a token from the simple auth manager's password)."""
    import httpx

    with httpx.Client(base_url=stack.base_url, timeout=60) as http:
        token = http.post("/auth/token", json={"username": "admin", "password": stack.password}).json()
        resp = http.request(
            method, f"/api/v2{path}", headers={"Authorization": f"Bearer {token['access_token']}"}, **kwargs
        )
        assert resp.status_code < 400, f"{method} {path}: {resp.status_code} {resp.text[:500]}"
        return resp.json() if resp.content else None


def _ti_state(stack: Stack, run_id: str, task_id: str) -> str | None:
    with sqlite3.connect(stack.airflow_home / "airflow.db", timeout=30) as db:
        row = db.execute(
            "SELECT state FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ?",
            (APPROVAL_DAG, run_id, task_id),
        ).fetchone()
    return None if row is None else row[0]


def _wait(check: Any, timeout: float, what: str, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {timeout:.0f}s\n{stack.log_tails()}")
        time.sleep(1)


def _approval_run_state(stack: Stack, run_id: str) -> str | None:
    with sqlite3.connect(stack.airflow_home / "airflow.db", timeout=30) as db:
        row = db.execute("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", (APPROVAL_DAG, run_id)).fetchone()
    return None if row is None else str(row[0])


def _messages_to(stack: Stack, workflow_id: str) -> int:
    """Messages sent to the workflow (dbos_testkit.notifications, on the client's engine)."""
    client = DBOSClient(system_database_url=stack.system_database_url, retry_connection_errors=False)
    try:
        return len(messages_to(client.system_database_engine, workflow_id))
    finally:
        client.destroy()


def _ask(stack: Stack, page: Any, order_id: str) -> tuple[str, str]:
    """Trigger the flagship DAG for an order, open its Required Action once asked; (run id, workflow id)."""
    order = {"order_id": order_id, "items": [{"sku": "gizmo", "qty": 1}]}
    run_id = _api(
        stack, "POST", f"/dags/{APPROVAL_DAG}/dagRuns", json={"logical_date": None, "conf": {"order": order}}
    )["dag_run_id"]
    _wait(lambda: _ti_state(stack, run_id, "approve") == "awaiting_input", 300, "the approval request", stack)
    workflow_id = f"{APPROVAL_DAG}:{run_id}:start_order:-1"
    from urllib.parse import quote

    page.goto(f"{stack.base_url}/dags/{APPROVAL_DAG}/runs/{quote(run_id, safe='')}/tasks/approve/required_actions")
    page.get_by_text(f"Ship order {order_id}").first.wait_for(timeout=90_000)
    return run_id, workflow_id


def test_required_actions_answers_the_workflow_once(stack: Stack, page: Any, tmp_path: Path) -> None:
    """The workflow asks; a person opens Required Actions and clicks "Approve"; the workflow ships with
    who approved; clearing the approval task afterwards asks nobody and sends nothing again."""
    _wait(
        lambda: _api(stack, "GET", "/dags?dag_id_pattern=dbos_order_approval")["total_entries"] > 0,
        180,
        "the DAG",
        stack,
    )
    _api(stack, "PATCH", f"/dags/{APPROVAL_DAG}", json={"is_paused": False})
    order_id = f"UI-A-{secrets.token_hex(2)}"
    run_id, workflow_id = _ask(stack, page, order_id)
    page.screenshot(path=str(tmp_path / "required-action.png"), full_page=False)
    page.screenshot(path=str(picture("required-action.png")), full_page=False)  # docs/approvals.md, README
    page.get_by_role("button", name="Approve").click()

    _wait(lambda: _approval_run_state(stack, run_id) in ("success", "failed"), 300, "the approved run", stack)
    assert _approval_run_state(stack, run_id) == "success", stack.log_tails()
    client = DBOSClient(system_database_url=stack.system_database_url, retry_connection_errors=False)
    try:
        [status] = client.list_workflows(workflow_ids=[workflow_id])
    finally:
        client.destroy()
    assert status.output["status"] == "shipped" and status.output["approved_by"] == "admin", status.output
    assert _messages_to(stack, workflow_id) == 1

    # The DBOS tab of the approval task shows the question, the answer, who answered.
    from dbos_airflow.links import view_path

    page.goto(stack.base_url + view_path(APPROVAL_DAG, run_id, "approve", -1))
    assert page.locator("#dbos-approval-answer").inner_text() == "Approve"
    assert page.locator("#dbos-approval-by").inner_text() == "admin"
    page.screenshot(path=str(tmp_path / "dbos-tab.png"), full_page=True)

    # A clear after the answer: the task runs again, finds the delivered answer, asks nobody.
    _api(
        stack,
        "POST",
        f"/dags/{APPROVAL_DAG}/clearTaskInstances",
        json={
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": ["approve"],
            "only_failed": False,
            "reset_dag_runs": True,
        },
    )
    _wait(lambda: _ti_state(stack, run_id, "approve") == "success", 300, "the cleared approval task", stack)
    assert _messages_to(stack, workflow_id) == 1


def test_required_actions_reject_skips_the_rest(stack: Stack, page: Any, tmp_path: Path) -> None:
    _api(stack, "PATCH", f"/dags/{APPROVAL_DAG}", json={"is_paused": False})
    order_id = f"UI-R-{secrets.token_hex(2)}"
    run_id, workflow_id = _ask(stack, page, order_id)
    page.get_by_role("button", name="Reject").click()
    _wait(lambda: _approval_run_state(stack, run_id) in ("success", "failed"), 300, "the rejected run", stack)
    assert _ti_state(stack, run_id, "wait_for_order") == "skipped"
    client = DBOSClient(system_database_url=stack.system_database_url, retry_connection_errors=False)
    try:
        handle = client.retrieve_workflow(workflow_id)
        _wait(lambda: handle.get_status().status == "SUCCESS", 120, "the rejected workflow's end", stack)
        assert handle.get_result()["status"] == "rejected"
    finally:
        client.destroy()
    assert _messages_to(stack, workflow_id) == 1
