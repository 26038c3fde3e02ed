"""Who may read and change which DBOS workflow in the view (docs/ui.md, "Permissions"), on a real stack.

A real ``airflow api-server`` in multi-team mode with a per-DAG auth manager
(tests/access_auth_manager.py), this session's Airflow metadata DB (DAG runs from ``dag.test()``),
the tests' DBOS worker on Postgres. Two DAG bundles owned by teams alpha and beta, one DAG each
(tests/dags/ui_access/dbos_access_dags.py), each of whose runs enqueues one workflow that stays ENQUEUED;
one workflow no Airflow task owns. Users: admin, an alpha viewer, an alpha editor, a beta user, a
beta op, and an alpha viewer and editor who read no connection (the simple auth manager's rule). Every refusal is checked to change nothing in DBOS' database nor in Airflow's audit log.
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
import sqlalchemy as sa
from conftest import ROOT, unique
from dbos_orchestrator.client import DBOSClient
from dbos_testkit.child_process import ChildProcess

from browser import picture

BIN = Path(sys.executable).parent
TEAMS = ("alpha", "beta")
USERS = {
    "admin": "admin",
    "alpha_viewer": "viewer:alpha",
    "alpha_editor": "user:alpha",
    "beta_user": "user:beta",
    "beta_op": "op:beta",
    # The simple auth manager's connection rule (tests/access_auth_manager.py): no connection read.
    "alpha_viewer_simple": "viewer:alpha",
    "alpha_editor_simple": "user:alpha",
}
NO_CONNECTION = {"alpha_viewer_simple", "alpha_editor_simple"}
CSRF = {"X-DBOS-Airflow": "1"}
# Who may read / change which workflow: the rule of docs/ui.md, "Permissions", written out.
READS = {
    "admin": {"alpha", "beta", "unowned"},
    "alpha_viewer": {"alpha"},
    "alpha_editor": {"alpha"},
    "beta_user": {"beta"},
    "beta_op": {"beta"},
    "alpha_viewer_simple": {"alpha"},
    "alpha_editor_simple": {"alpha"},
}
ACTS = {
    "admin": {"alpha", "beta", "unowned"},
    "alpha_viewer": set(),
    "alpha_editor": {"alpha"},
    "beta_user": {"beta"},
    "beta_op": {"beta"},
    "alpha_viewer_simple": set(),
    "alpha_editor_simple": {"alpha"},
}


@dataclass
class Stack:
    base: str
    log: Path
    passwords: dict[str, str]
    runs: dict[str, str]  # team -> run id
    workflows: dict[str, str]  # "alpha" / "beta" / "unowned" -> workflow id
    engine: sa.Engine
    tokens: dict[str, str]

    def headers(self, user: str) -> dict[str, str]:
        if user not in self.tokens:
            r = requests.post(
                f"{self.base}/auth/token",
                json={"username": user, "password": self.passwords[user]},
                timeout=30,
            )
            r.raise_for_status()
            self.tokens[user] = str(r.json()["access_token"])
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def tab(self, team: str, run_id: str | None = None) -> str:
        run = quote(run_id or self.runs[team], safe="")
        return f"{self.base}/dbos/ti/dbos_{team}_wf/run/-1/{run}"

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _give_bundles_to_teams(dag_ids: dict[str, str]) -> None:
    """Each team's DAG in a bundle of its own, owned by the team (multi-team mode)."""
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.team import Team
    from airflow.utils.session import create_session

    with create_session() as session:
        for team, dag_id in dag_ids.items():
            row = session.get(Team, team) or Team(name=team)
            session.add(row)
            bundle = session.get(DagBundleModel, f"{team}-dags") or DagBundleModel(name=f"{team}-dags")
            session.add(bundle)
            session.flush()
            if row not in bundle.teams:
                bundle.teams.append(row)
            session.execute(sa.update(DagModel).where(DagModel.dag_id == dag_id).values(bundle_name=bundle.name))
    for team, dag_id in dag_ids.items():
        assert DagModel.get_team_name(dag_id) == team


@pytest.fixture(scope="module")
def client(system_database_url: str, dbos_worker: Any) -> Iterator[DBOSClient]:
    """One client for the module (portable JSON, as the provider's operators write)."""
    from dbos import DBOSPortableJSONSerializer

    c = DBOSClient(system_database_url=system_database_url, serializer=DBOSPortableJSONSerializer())
    yield c
    c.destroy()


@pytest.fixture(scope="module")
def stack(dbos_conn: str, airflow_db: Path, system_database_url: str, client: DBOSClient) -> Iterator[Stack]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags" / "ui_access" / "dbos_access_dags.py"))
    assert not bag.import_errors, bag.import_errors
    runs = {}
    for team in TEAMS:
        dr = bag.get_dag(f"dbos_{team}_wf").test()
        assert dr.state == "success", dr.state
        runs[team] = dr.run_id
    _give_bundles_to_teams({team: f"dbos_{team}_wf" for team in TEAMS})
    unowned = unique("access-unowned")
    client.enqueue({"workflow_name": "wf_double", "queue_name": "q_access_nobody", "workflow_id": unowned}, 1)
    workflows = {team: f"dbos_{team}_wf:{runs[team]}:run:-1" for team in TEAMS} | {"unowned": unowned}

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__CORE__MULTI_TEAM": "True",
        "AIRFLOW__CORE__AUTH_MANAGER": "access_auth_manager.AccessAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
        "AIRFLOW_CONN_DBOS_BETA_ONLY": os.environ["AIRFLOW_CONN_DBOS_DEFAULT"],
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
        "PYTHONUNBUFFERED": "1",
    }
    log = airflow_db / "api-server-access.log"
    proc = ChildProcess("api-server", [str(BIN / "airflow"), "api-server", "-w", "1", "-p", str(port)], env, log)
    engine = sa.create_engine(system_database_url)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or proc.proc.poll() is not None:
                pytest.fail(f"api-server did not start:\n{log.read_text(errors='replace')[-4000:]}", pytrace=False)
            time.sleep(0.5)
        passwords = json.loads((airflow_db / "simple_auth_manager_passwords.json.generated").read_text())
        yield Stack(base, log, passwords, runs, workflows, engine, {})
    finally:
        proc.stop(grace=10)
        engine.dispose()


def said(r: requests.Response) -> str:
    """The one-line message of an answer (its error box, or the start of its text)."""
    found = re.search(r'id="dbos-error">([^<]*)<', r.text)
    return html.unescape(found.group(1)) if found else r.text[:300]


def dbos_state(stack: Stack) -> list[tuple[Any, ...]]:
    """What a refused request could have changed in DBOS: the rows on the tests' unpolled queue
    (id, status, attributes) and every fork's id and origin (a fork runs on DBOS' own queue)."""
    with stack.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT workflow_uuid, CASE WHEN queue_name = 'q_access_nobody' THEN status END, forked_from, "
                "CAST(attributes AS TEXT) FROM dbos.workflow_status "
                "WHERE queue_name = 'q_access_nobody' OR forked_from IS NOT NULL ORDER BY workflow_uuid"
            )
        )
        return [tuple(r) for r in rows]


def audit_rows() -> int:
    from airflow.models.log import Log
    from airflow.utils.session import create_session

    with create_session() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(Log).where(Log.event.like("dbos.%"))) or 0)


def refused_changes_nothing(stack: Stack, send: Any, status: tuple[int, ...] = (401, 403)) -> requests.Response:
    """``send()`` a request that must be refused; DBOS' rows and the audit log stay as they were."""
    before, logged = dbos_state(stack), audit_rows()
    answer = send()
    assert answer.status_code in status, (answer.status_code, said(answer))
    assert dbos_state(stack) == before and audit_rows() == logged
    return answer


def test_owner_record_is_written_by_the_enqueue(stack: Stack, client: DBOSClient) -> None:
    """docs/ui.md, "Permissions": the provider records the task instance in DBOS' attributes."""
    rows = client.list_workflows(workflow_ids=[stack.workflows["alpha"], stack.workflows["unowned"]])
    attrs = {r.workflow_id: r.attributes for r in rows}
    assert attrs[stack.workflows["alpha"]] == {
        "airflow": {
            "dag_id": "dbos_alpha_wf",
            "run_id": stack.runs["alpha"],
            "task_id": "run",
            "map_index": -1,
            "conn_id": "dbos_default",
        }
    }
    assert not attrs[stack.workflows["unowned"]]


@pytest.mark.parametrize("user", list(USERS))
def test_single_view_reads_only_what_the_rule_allows(stack: Stack, user: str) -> None:
    """docs/ui.md, "Permissions": GET /workflow needs read on the owning DAG (all DAGs if unowned)."""
    for kind, wid in stack.workflows.items():
        r = requests.get(f"{stack.base}/dbos/workflow", params={"id": wid}, headers=stack.headers(user), timeout=30)
        if kind in READS[user]:
            assert r.status_code == 200 and wid in r.text, (user, kind, said(r))
            assert ("data-action" in r.text) == (kind in ACTS[user]), (user, kind)
        else:
            assert r.status_code == 403 and '"1"' not in r.text and "Inputs" not in r.text, (user, kind, said(r))


@pytest.mark.parametrize("user", list(USERS))
def test_page_lists_only_readable_workflows(stack: Stack, user: str) -> None:
    """docs/ui.md, "Permissions": the DBOS page lists what the user may read, filtered in the query;
    listing a connection's workflows needs read on it."""
    r = requests.get(
        f"{stack.base}/dbos/workflows", params={"name": "wf_double"}, headers=stack.headers(user), timeout=30
    )
    if user in NO_CONNECTION:
        assert r.status_code == 403 and said(r) == "conn_id: you may not read the connection 'dbos_default'"
        assert not any(wid in r.text for wid in stack.workflows.values())
        return
    assert r.status_code == 200, said(r)
    shown = {kind for kind, wid in stack.workflows.items() if wid in r.text}
    assert shown == READS[user], (user, shown)
    if user != "admin":  # nothing of another team at all, on any page
        assert "dbos_beta_wf" not in r.text or user.startswith("beta")
        assert "dbos_alpha_wf" not in r.text or user.startswith("alpha")


@pytest.mark.parametrize("user", list(USERS))
def test_tab_reads_own_team_only(stack: Stack, user: str) -> None:
    """docs/ui.md, "Permissions": the tab of a task instance needs read on its DAG and the workflow's."""
    for team in TEAMS:
        r = requests.get(stack.tab(team), headers=stack.headers(user), timeout=30)
        if team in READS[user]:
            assert r.status_code == 200 and stack.workflows[team] in r.text, (user, team, said(r))
        else:
            assert r.status_code == 403 and stack.workflows[team] not in r.text, (user, team, said(r))
        other = "beta" if team == "alpha" else "alpha"
        r = requests.get(
            stack.tab(team), params={"workflow_id": stack.workflows[other]}, headers=stack.headers(user), timeout=30
        )
        assert r.status_code == 403 and "Inputs" not in r.text, (user, team, said(r))


@pytest.mark.parametrize("user", list(USERS))
def test_actions_follow_the_rule_on_every_route(stack: Stack, user: str, client: DBOSClient) -> None:
    """docs/ui.md, "Permissions": acting needs edit on the owning DAG (all DAGs if unowned); refusals change nothing."""
    for kind, wid in stack.workflows.items():
        fork = {"action": "fork", "workflow_id": wid, "step": 1}
        routes = [(f"{stack.base}/dbos/workflow", {"id": wid})]
        if kind != "unowned":
            routes.append((stack.tab(kind), {}))
        for url, params in routes:

            def send(url: str = url, params: dict[str, str] = params, fork: Any = fork) -> requests.Response:
                return requests.post(url, params=params, json=fork, headers={**stack.headers(user), **CSRF}, timeout=30)

            if kind in ACTS[user]:
                r = send()
                assert r.status_code == 200, (user, kind, url, said(r))
                new = client.list_workflows(workflow_ids=[r.json()["workflow_id"]], load_input=False)
                assert new and new[0].forked_from == wid
            else:
                refused_changes_nothing(stack, send)


def test_cancel_changes_state_only_when_allowed(stack: Stack, client: DBOSClient) -> None:
    """docs/ui.md, "Permissions": another team's cancel is refused; the owner's editor cancels."""
    wid = stack.workflows["alpha"]
    cancel = {"action": "cancel", "workflow_id": wid}
    for user in ("beta_op", "beta_user", "alpha_viewer", "alpha_viewer_simple"):
        for url, params in ((f"{stack.base}/dbos/workflow", {"id": wid}), (stack.tab("alpha"), {})):
            refused_changes_nothing(
                stack,
                lambda url=url, params=params, user=user: requests.post(
                    url, params=params, json=cancel, headers={**stack.headers(user), **CSRF}, timeout=30
                ),
            )
    assert client.list_workflows(workflow_ids=[wid], load_input=False)[0].status == "ENQUEUED"
    logged = audit_rows()
    ok = requests.post(stack.tab("alpha"), json=cancel, headers={**stack.headers("alpha_editor"), **CSRF}, timeout=30)
    assert ok.status_code == 200, said(ok)
    assert client.list_workflows(workflow_ids=[wid], load_input=False)[0].status == "CANCELLED"
    assert audit_rows() == logged + 1


@pytest.mark.parametrize("user", ["alpha_editor", "alpha_editor_simple"])
def test_xcom_rewrite_points_nowhere_else(stack: Stack, client: DBOSClient, user: str) -> None:
    """docs/ui.md, "Permissions": XCom is only a pointer; rewriting it through the REST API gains
    nothing, with or without read on the connections."""
    editor = stack.headers(user)
    xcom = (
        f"{stack.base}/api/v2/dags/dbos_alpha_wf/dagRuns/{quote(stack.runs['alpha'], safe='')}"
        "/taskInstances/run/xcomEntries"
    )
    beta = stack.workflows["beta"]
    r = requests.patch(f"{xcom}/workflow_id", json={"value": beta}, headers=editor, timeout=30)
    assert r.status_code == 200, r.text
    page = requests.get(stack.tab("alpha"), headers=editor, timeout=30)
    assert page.status_code == 200 and stack.workflows["alpha"] in page.text and beta not in page.text
    assert requests.get(stack.tab("alpha"), params={"workflow_id": beta}, headers=editor, timeout=30).status_code == 403
    for action in ({"action": "cancel", "workflow_id": beta}, {"action": "fork", "workflow_id": beta, "step": 1}):
        refused_changes_nothing(
            stack,
            lambda action=action: requests.post(
                stack.tab("alpha"), json=action, headers={**editor, **CSRF}, timeout=30
            ),
        )
    assert client.list_workflows(workflow_ids=[beta], load_input=False)[0].status == "ENQUEUED"

    r = requests.patch(f"{xcom}/dbos_conn_id", json={"value": "dbos_beta_only"}, headers=editor, timeout=30)
    assert r.status_code == 200, r.text
    try:
        denied = requests.get(stack.tab("alpha"), headers=editor, timeout=30)
        assert denied.status_code == 403 and "dbos_beta_only" in denied.text and "Inputs" not in denied.text
        refused_changes_nothing(
            stack,
            lambda: requests.post(
                stack.tab("alpha"),
                json={"action": "cancel", "workflow_id": stack.workflows["alpha"]},
                headers={**editor, **CSRF},
                timeout=30,
            ),
        )
    finally:
        requests.patch(f"{xcom}/dbos_conn_id", json={"value": "dbos_default"}, headers=editor, timeout=30)
        requests.patch(f"{xcom}/workflow_id", json={"value": stack.workflows["alpha"]}, headers=editor, timeout=30)


@pytest.mark.parametrize("user", sorted(NO_CONNECTION))
def test_without_the_connection_no_id_is_told_apart(stack: Stack, user: str) -> None:
    """docs/ui.md, "Permissions": a user who may not read the connection learns nothing of a
    workflow it may not read, not even whether its id exists."""
    for wid in (stack.workflows["unowned"], unique("no-such-workflow")):
        for url, params in ((f"{stack.base}/dbos/workflow", {"id": wid}), (stack.tab("alpha"), {"workflow_id": wid})):
            r = requests.get(url, params=params, headers=stack.headers(user), timeout=30)
            assert r.status_code == 403, (url, wid, said(r))
            assert said(r) == f"DBOS workflow {wid!r}: you may not read the connection 'dbos_default'", said(r)


@pytest.mark.parametrize("user", sorted(NO_CONNECTION))
def test_without_the_connection_no_connection_id_is_told_apart(stack: Stack, user: str) -> None:
    """docs/ui.md, "Permissions": the single view through a connection the user may not read says
    nothing of whether that connection exists."""
    wid = stack.workflows["alpha"]
    for conn_id in ("no_such_conn", "dbos_beta_only"):
        r = requests.get(
            f"{stack.base}/dbos/workflow",
            params={"id": wid, "conn_id": conn_id},
            headers=stack.headers(user),
            timeout=30,
        )
        assert r.status_code == 403 and said(r).endswith(f": you may not read the connection {conn_id!r}"), said(r)
        assert "Inputs" not in r.text and "not defined" not in r.text


def test_chosen_run_id_reaches_no_workflow(stack: Stack, client: DBOSClient) -> None:
    """docs/ui.md, "Permissions": a run id chosen to match a workflow's id shape reaches nothing."""
    run_id = unique("chosen")
    target = f"dbos_alpha_wf:{run_id}:run:-1"  # the shape the old view derived before a task pushed anything
    client.enqueue({"workflow_name": "wf_double", "queue_name": "q_access_nobody", "workflow_id": target}, 1)
    editor = stack.headers("alpha_editor")
    r = requests.post(
        f"{stack.base}/api/v2/dags/dbos_alpha_wf/dagRuns",
        json={"dag_run_id": run_id, "logical_date": None},
        headers=editor,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    page = requests.get(stack.tab("alpha", run_id), headers=editor, timeout=30)
    assert target not in page.text or page.status_code == 403, said(page)
    assert "Inputs" not in page.text
    r = requests.get(stack.tab("alpha", run_id), params={"workflow_id": target}, headers=editor, timeout=30)
    assert r.status_code == 403 and "Inputs" not in r.text
    refused_changes_nothing(
        stack,
        lambda: requests.post(
            stack.tab("alpha", run_id),
            json={"action": "cancel", "workflow_id": target},
            headers={**editor, **CSRF},
            timeout=30,
        ),
    )
    assert client.list_workflows(workflow_ids=[target], load_input=False)[0].status == "ENQUEUED"
    client.cancel_workflow(target)


@pytest.mark.parametrize("user", list(USERS))
def test_queues_view_only_for_who_reads_every_dag(stack: Stack, user: str) -> None:
    """docs/ui.md, "Permissions": the queues view counts every DAG's workflows, so it is shown only to a
    user who may read the connection and all DAGs (here: admin); the others get a 403 and no counts."""
    r = requests.get(f"{stack.base}/dbos/queues", headers=stack.headers(user), timeout=30)
    listing = requests.get(f"{stack.base}/dbos/workflows", headers=stack.headers(user), timeout=30)
    # the DBOS page links the view for whoever may open it, and only for them
    assert ('id="queues-link"' in listing.text) is (r.status_code == 200), (user, listing.status_code)
    if READS[user] >= {"alpha", "beta", "unowned"}:
        assert r.status_code == 200, said(r)
        assert 'href="/dbos/queues?conn_id=dbos_default"' in listing.text, listing.text[:2000]
        assert 'id="dbos-queues"' in r.text and "DBOS schedules" in r.text
        assert '<tr class="queue"><td><a href="/dbos/workflows?conn_id=dbos_default&amp;queue=q">q</a></td>' in r.text
    else:
        assert r.status_code == 403, (user, r.status_code)
        # refused for the connection first (the simple auth manager's viewers), else for the DAGs
        why = said(r)
        assert 'id="dbos-queues"' not in r.text, user
        assert "needs read access to all DAGs" in why or "you may not read the connection" in why, why


def test_connection_parameter_needs_the_connection(stack: Stack) -> None:
    """docs/ui.md, "Permissions": ``?conn_id=`` queries only a connection the user may read."""
    for user, allowed in (("alpha_editor", False), ("beta_user", True), ("admin", True)):
        r = requests.get(
            f"{stack.base}/dbos/workflows",
            params={"conn_id": "dbos_beta_only"},
            headers=stack.headers(user),
            timeout=30,
        )
        assert (r.status_code == 200) == allowed, (user, r.status_code, said(r))
        if not allowed:
            assert "127.0.0.1" not in r.text and "5432" not in r.text  # nothing of where the connection points


def test_anonymous_and_cross_site_are_refused(stack: Stack) -> None:
    """docs/ui.md, "Security": no session, no access; forged origins (X-Forwarded-Host, scheme) refused."""
    wid = stack.workflows["alpha"]
    for path in ("/dbos/", "/dbos/workflows", f"/dbos/workflow?id={wid}", "/dbos/static/dbos.js"):
        assert requests.get(stack.base + path, timeout=30, allow_redirects=False).status_code in (401, 403)
    admin = {**stack.headers("admin"), **CSRF}
    body = {"action": "cancel", "workflow_id": wid}
    host = stack.base.removeprefix("http://")
    for forged in (
        {"Origin": "https://evil.example"},
        {"Origin": "https://evil.example", "X-Forwarded-Host": "evil.example"},
        {"Origin": f"https://{host}"},  # the right host, another scheme
        {"Origin": f"http://{host}.evil.example"},  # our host with a suffix (was a 500: the port is no number)
        {"Origin": "null"},
    ):
        for url, params in ((f"{stack.base}/dbos/workflow", {"id": wid}), (stack.tab("alpha"), {})):
            answer = refused_changes_nothing(
                stack,
                lambda forged=forged, url=url, params=params: requests.post(
                    url, params=params, json=body, headers={**admin, **forged}, timeout=30
                ),
                status=(403,),
            )
            assert "cross-origin" in answer.text, (forged, said(answer))


def test_security_headers_on_every_answer(stack: Stack) -> None:
    """docs/ui.md, "Security": nosniff and a CSP of the page's own script and style, on pages and errors."""
    admin = stack.headers("admin")
    for path in ("/dbos/workflows", f"/dbos/workflow?id={stack.workflows['alpha']}", "/dbos/workflows?page=0"):
        r = requests.get(stack.base + path, headers=admin, timeout=30)
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "frame-ancestors 'self'" in csp
        assert "unsafe-inline" not in csp and "<script>" not in r.text and "<style>" not in r.text
    css = requests.get(f"{stack.base}/dbos/static/dbos.css", headers=admin, timeout=30)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


BAD_INPUTS = [
    # (method, path, params, body, status, field)
    ("GET", "/dbos/workflows", {"since_hours": "nan"}, None, 400, "since_hours"),
    ("GET", "/dbos/workflows", {"since_hours": "inf"}, None, 400, "since_hours"),
    ("GET", "/dbos/workflows", {"since_hours": "1e300"}, None, 400, "since_hours"),
    ("GET", "/dbos/workflows", {"page": "-1"}, None, 400, "page"),
    ("GET", "/dbos/workflows", {"page": "0"}, None, 400, "page"),
    ("GET", "/dbos/workflows", {"page": str(10**20)}, None, 400, "page"),
    ("GET", "/dbos/workflows", {"status": "NOPE"}, None, 400, "status"),
    ("GET", "/dbos/workflows", {"conn_id": "no_such_conn"}, None, 404, "conn_id"),
    ("GET", "/dbos/workflow", {"id": "a\x00b"}, None, 400, "id"),
    ("GET", "/dbos/ti/dbos_alpha_wf/run/99999999999999999999/x", {}, None, 400, "map_index"),
    ("GET", "/dbos/ti/..%2Fdbos_alpha_wf/run/-1/x", {}, None, 400, "dag_id"),
    ("GET", "/dbos/ti/dbos%2Falpha/run/-1/x", {}, None, 400, "dag_id"),
    ("POST", "/dbos/workflow", {"id": "x"}, {"action": "fork", "workflow_id": "a\x00b"}, 400, "workflow_id"),
    ("POST", "/dbos/workflow", {"id": "x"}, '{"action": "fork", "workflow_id": "a\\ud800"}', 400, "workflow_id"),
    ("POST", "/dbos/workflow", {"id": "x"}, {"action": "fork", "workflow_id": "WF", "step": 10**30}, 400, "step"),
    ("POST", "/dbos/workflow", {"id": "x"}, {"action": "fork", "workflow_id": "WF", "step": 0}, 400, "step"),
    ("POST", "/dbos/workflow", {"id": "x"}, {"action": "explode", "workflow_id": "WF"}, 400, "action"),
    (
        "POST",
        "/dbos/workflow",
        {"id": "x", "conn_id": "no_such_conn"},
        {"action": "cancel", "workflow_id": "WF"},
        404,
        "conn_id",
    ),
]


@pytest.mark.parametrize(("method", "path", "params", "body", "status", "field"), BAD_INPUTS)
def test_bad_input_is_a_4xx_naming_the_field(
    stack: Stack, method: str, path: str, params: dict[str, str], body: Any, status: int, field: str
) -> None:
    """docs/ui.md, "Bad input": a 4xx whose message names the field, no traceback, nothing changed."""
    headers = {**stack.headers("admin"), **CSRF, "Content-Type": "application/json"}
    if isinstance(body, dict):
        body = json.dumps({k: (stack.workflows["alpha"] if v == "WF" else v) for k, v in body.items()})
    before, logged = dbos_state(stack), audit_rows()
    r = requests.request(method, stack.base + path, params=params, data=body, headers=headers, timeout=30)
    assert r.status_code == status, (r.status_code, said(r))
    assert field in r.text and "Traceback" not in r.text and 'File "' not in r.text, said(r)
    assert dbos_state(stack) == before and audit_rows() == logged
    # The shared hook survived the user's error: the next request is served.
    ok = requests.get(f"{stack.base}/dbos/workflows", headers=stack.headers("admin"), timeout=30)
    assert ok.status_code == 200


@pytest.mark.browser
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_view_follows_airflows_theme(stack: Stack, theme: str) -> None:
    """docs/ui.md, "Look": the tab takes Airflow's own theme setting. The screenshots go to
    test-artifacts/ (gitignored); with ``DBOS_AIRFLOW_DOCS_IMAGES=1`` they replace docs/images/."""
    from playwright.sync_api import sync_playwright

    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.fail(f"{chromium} is missing (`make system-packages`)", pytrace=False)
    run = quote(stack.runs["alpha"], safe="")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="light")
            context.set_default_timeout(60_000)
            pg = context.new_page()
            pg.goto(f"{stack.base}/")
            pg.get_by_label("Username").fill("admin")
            pg.get_by_label("Password").fill(stack.passwords["admin"])
            pg.get_by_role("button", name="Sign in").click()
            pg.wait_for_url(f"{stack.base}/", timeout=60_000)
            pg.evaluate("t => localStorage.setItem('theme', t)", theme)  # Airflow's own setting
            pg.goto(f"{stack.base}/dags/dbos_alpha_wf/runs/{run}/tasks/run")
            pg.get_by_text("DBOS workflow", exact=True).click()
            frame = pg.frame_locator("iframe[title='DBOS workflow']")
            frame.locator("#dbos-status").wait_for()
            frame.locator(f"html[data-theme='{theme}']").wait_for()
            pg.wait_for_timeout(500)
            pg.screenshot(path=str(picture(f"dbos-view-{theme}.png")))
        finally:
            browser.close()


@pytest.mark.browser
def test_a_viewer_without_the_connection_sees_the_tab(stack: Stack) -> None:
    """docs/ui.md, "Permissions": in Airflow's own UI, a viewer who reads no connection (the simple
    auth manager's viewers) opens the DBOS tab of a task it may read, as it opens its logs."""
    from playwright.sync_api import sync_playwright

    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.fail(f"{chromium} is missing (`make system-packages`)", pytrace=False)
    user = "alpha_viewer_simple"
    run = quote(stack.runs["alpha"], safe="")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.set_default_timeout(60_000)
            pg = context.new_page()
            pg.goto(f"{stack.base}/")
            pg.get_by_label("Username").fill(user)
            pg.get_by_label("Password").fill(stack.passwords[user])
            pg.get_by_role("button", name="Sign in").click()
            pg.wait_for_url(f"{stack.base}/", timeout=60_000)
            pg.goto(f"{stack.base}/dags/dbos_alpha_wf/runs/{run}/tasks/run")
            pg.get_by_text("DBOS workflow", exact=True).click()
            frame = pg.frame_locator("iframe[title='DBOS workflow']")
            frame.locator("#dbos-status").wait_for()
            body = frame.locator("body").inner_text()
            assert stack.workflows["alpha"] in body and "may not" not in body, body[:500]
            assert frame.locator("[data-action]").count() == 0  # a viewer reads; it does not act
        finally:
            browser.close()
