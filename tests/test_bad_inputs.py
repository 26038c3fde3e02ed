"""Bad inputs across the public surface (README, "Troubleshooting"): one table.

For every case: the exception type, that its message names the offending thing (and never the
connection's password), and that nothing was half-written: the rows of the system database's
``workflow_status`` and ``notifications`` tables are counted before and after. Most cases call
the hook, client, operators and sensors directly with a small fake context (fast); the last
few go through ``dag.test()``.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dbos
import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException, AirflowSkipException
from conftest import ROOT, unique
from dbos_orchestrator.exceptions import (
    DBOSConnectionError,
    DBOSOptionsError,
    DBOSSchemaMissingError,
    DBOSSerializationError,
    DBOSUnsafeValueError,
)
from fakes import FakeTI

from dbos_airflow.exceptions import DBOSTriggerEventError, DBOSWorkflowNotFoundError
from dbos_airflow.hooks.dbos import DBOSHook

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dbos_orchestrator.client import DBOSClient

SECRET = "s3cret-Bad-Inputs-pw"
Q: Any = {"queue_name": "q", "workflow_name": "wf_double"}


def ctx() -> Any:
    return {"ti": FakeTI()}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Env:
    mp: pytest.MonkeyPatch
    client: Any  # a dbos_airflow DBOSClient, called with bad arguments on purpose
    url: sa.URL  # the system database
    done: str  # a finished portable workflow whose output row is corrupt JSON
    missing: str  # an id no workflow has
    port: int  # a closed port
    hooks: list[DBOSHook] = field(default_factory=list)  # closed after the case

    def conn(self, conn_id: str, value: dict[str, Any] | str) -> DBOSHook:
        """A ``dbos`` connection (with a password) given as JSON or a URI, and a hook on it."""
        self.mp.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value if isinstance(value, str) else json.dumps(value))
        return self.hook(conn_id)

    def hook(self, conn_id: str = "dbos_default") -> DBOSHook:
        self.hooks.append(DBOSHook(conn_id))
        return self.hooks[-1]

    def real(self, **changes: Any) -> dict[str, Any]:
        """The JSON form of a connection to the real system database, with ``changes``."""
        base = {
            "conn_type": "dbos",
            "host": self.url.host,
            "port": self.url.port or 5432,
            "login": self.url.username,
            "password": SECRET,
            "schema": self.url.database,
        }
        return {**base, **changes}


@dataclass(frozen=True)
class Case:
    id: str
    error: type[BaseException] | tuple[type[BaseException], ...]
    names: tuple[str, ...]  # substrings of the message; formatted with {missing}, {done}, {db}, {port}
    run: Callable[[Env], object]


def _enqueue_op(**kwargs: Any) -> Any:
    from dbos_airflow.operators.dbos import DBOSEnqueueOperator

    return DBOSEnqueueOperator(task_id="e", workflow_name="wf_double", queue_name="q", **kwargs)


def _bulk_op(items: Any, **kwargs: Any) -> Any:
    from dbos_airflow.operators.bulk import DBOSBulkEnqueueOperator

    return DBOSBulkEnqueueOperator(task_id="b", workflow_name="wf_double", queue_name="q", items=items, **kwargs)


def _thousand(bad: Any) -> list[Any]:
    items: list[Any] = [[i] for i in range(1000)]
    items[500] = bad
    return items


def _sensor(kind: str, workflow_id: str) -> Any:
    from dbos_airflow.sensors.dbos import DBOSEventSensor, DBOSWorkflowSensor

    if kind == "workflow":
        return DBOSWorkflowSensor(task_id="s", workflow_id=workflow_id)
    return DBOSEventSensor(task_id="s", workflow_id=workflow_id, key="k")


def _send_op(destination: str, message: Any) -> Any:
    from dbos_airflow.operators.dbos import DBOSSendOperator

    return DBOSSendOperator(task_id="send", destination_id=destination, message=message, topic="t")


CASES = [
    # -- connections ------------------------------------------------------------------------------
    Case(
        "uri-port-not-a-number",
        DBOSOptionsError,
        ("connection 'bad_uri'", "AIRFLOW_CONN_BAD_URI", "notaport"),
        lambda e: e.conn("bad_uri", f"dbos://someone:{SECRET}@127.0.0.1:notaport/x_dbos_sys").get_client(),
    ),
    Case(
        "json-port-not-a-number",
        DBOSOptionsError,
        ("AIRFLOW_CONN_BAD_JSON", "'abc'"),
        lambda e: e.conn("bad_json", e.real(port="abc")).get_client(),
    ),
    Case(
        "extra-not-json",
        DBOSOptionsError,
        ("connection 'bad_extra'", "extra is not valid JSON"),
        lambda e: e.conn("bad_extra", e.real(extra="{not json")).get_client(),
    ),
    Case(
        "extra-a-list",
        DBOSOptionsError,
        ("connection 'bad_extra'", "extra must be a JSON object", "list"),
        lambda e: e.conn("bad_extra", e.real(extra=["allow_pickle"])).get_client(),
    ),
    Case(
        "extra-unknown-key",
        DBOSOptionsError,
        ("allow_pickles", "valid extras are"),
        lambda e: e.conn("bad_extra", e.real(extra={"allow_pickles": True})).get_client(),
    ),
    Case(
        "extra-bad-serialization",
        DBOSOptionsError,
        ("serialization='xml'",),
        lambda e: e.conn("bad_extra", e.real(extra={"serialization": "xml"})).get_client(),
    ),
    Case(
        "extra-negative-connect-timeout",
        DBOSOptionsError,
        ("connect_timeout=-3",),
        lambda e: e.conn("bad_extra", e.real(extra={"connect_timeout": -3})).get_client(),
    ),
    Case(
        "extra-allow-pickle-not-bool",
        DBOSOptionsError,
        ("extra allow_pickle", "'maybe'"),
        lambda e: e.conn("bad_extra", e.real(extra={"allow_pickle": "maybe"})).get_client(),
    ),
    Case(
        "mysql-system-database-url",
        DBOSOptionsError,
        ("system_database_url", "mysql://", "postgresql://"),
        lambda e: e.conn("bad_url", e.real(extra={"system_database_url": f"mysql://u:{SECRET}@h/db"})).get_client(),
    ),
    Case(
        "system-database-url-not-a-url",
        DBOSOptionsError,
        ("system_database_url is not a database URL",),
        lambda e: e.conn("bad_url", e.real(extra={"system_database_url": "no url here"})).get_client(),
    ),
    Case(
        "no-database-named",
        DBOSOptionsError,
        ("connection 'no_db'", "names no database"),
        lambda e: e.conn("no_db", e.real(schema=None)).get_client(),
    ),
    Case(
        "database-does-not-exist",
        DBOSConnectionError,
        ("{host}:{dbport}/no_such_db_dbos_sys", "does not exist"),
        lambda e: e.conn("missing_db", e.real(schema="no_such_db_dbos_sys")).get_client(),
    ),
    Case(
        "wrong-dbos-schema",
        DBOSSchemaMissingError,
        ("no DBOS system tables in {db}.elsewhere",),
        lambda e: e.conn("wrong_schema", e.real(extra={"dbos_system_schema": "elsewhere"})).get_workflow_status("x"),
    ),
    Case(
        "unreachable-host",
        DBOSConnectionError,
        ("cannot connect", "127.0.0.1:{port}/"),
        lambda e: e.conn("down", e.real(host="127.0.0.1", port=e.port, extra={"connect_timeout": 2})).get_client(),
    ),
    Case(
        "undefined-connection-id",
        AirflowNotFoundException,
        ("no_such_dbos_conn",),
        lambda e: DBOSHook("no_such_dbos_conn").get_client(),
    ),
    Case(
        "bad-connection-fails-the-task-without-retries",
        AirflowFailException,
        ("connection 'bad_extra'",),
        lambda e: (
            e.conn("bad_extra", e.real(extra={"serialization": "xml"})),
            _enqueue_op(dbos_conn_id="bad_extra").execute(ctx()),
        ),
    ),
    # -- enqueue options and arguments ----------------------------------------------------------------
    Case(
        "unknown-option-key",
        DBOSOptionsError,
        ("'queue'", "valid keys are"),
        lambda e: e.client.enqueue({**Q, "queue": "x"}, 1),
    ),
    Case(
        "missing-queue-name",
        DBOSOptionsError,
        ("missing required key(s): queue_name",),
        lambda e: e.client.enqueue({"workflow_name": "wf_double"}, 1),
    ),
    Case(
        "options-not-a-dict",
        DBOSOptionsError,
        ("EnqueueOptions must be a dict", "str"),
        lambda e: e.client.enqueue("q", 1),
    ),
    Case(
        "two-class-names",
        DBOSOptionsError,
        ("workflow_class_name='A'", "class_name='B'"),
        lambda e: e.client.enqueue({**Q, "workflow_class_name": "A", "class_name": "B"}, 1),
    ),
    Case(
        "workflow-id-not-text",
        DBOSOptionsError,
        ("workflow_id=5", "must be a string"),
        lambda e: e.client.enqueue({**Q, "workflow_id": 5}, 1),
    ),
    Case(
        "negative-workflow-timeout",
        DBOSOptionsError,
        ("workflow_timeout=-1",),
        lambda e: e.client.enqueue({**Q, "workflow_timeout": -1}, 1),
    ),
    Case(
        "priority-out-of-range",
        dbos.error.DBOSException,
        ("Invalid priority 0",),
        lambda e: e.client.enqueue({**Q, "priority": 0}, 1),
    ),
    Case(
        "unencodable-argument",
        DBOSSerializationError,
        ("'wf_double'", "args[0]", "portable JSON", "object"),
        lambda e: e.hook().enqueue(Q.copy(), object()),
    ),
    Case(
        "unpicklable-keyword-argument",
        DBOSSerializationError,
        ("kwargs['fn']", "pickle"),
        lambda e: e.hook().enqueue(Q.copy(), serialization="pickle", fn=lambda: 1),
    ),
    Case(
        "non-string-dict-key-through-operator",
        AirflowFailException,
        ("args[0]", "non-string keys"),
        lambda e: _enqueue_op(workflow_args=[{1: "x"}]).execute(ctx()),
    ),
    # -- operator parameters, as templates render them ----------------------------------------------
    Case(
        "workflow-args-not-json",
        AirflowFailException,
        ("workflow_args is not valid JSON",),
        lambda e: _enqueue_op(workflow_args="[1, 2").execute(ctx()),
    ),
    Case(
        "workflow-args-an-object",
        AirflowFailException,
        ("workflow_args must be a list", "dict"),
        lambda e: _enqueue_op(workflow_args='{"x": 1}').execute(ctx()),
    ),
    Case(
        "workflow-kwargs-not-json",
        AirflowFailException,
        ("workflow_kwargs is not valid JSON",),
        lambda e: _enqueue_op(workflow_kwargs="{oops").execute(ctx()),
    ),
    Case(
        "negative-timeout",
        AirflowFailException,
        ("timeout=-5",),
        lambda e: _enqueue_op(wait_for_completion=True, timeout=-5).execute(ctx()),
    ),
    Case(
        "wait-flag-not-a-boolean",
        AirflowFailException,
        ("wait_for_completion='perhaps'",),
        lambda e: _enqueue_op(wait_for_completion="perhaps").execute(ctx()),
    ),
    Case(
        "unknown-retry-mode",
        DBOSOptionsError,
        ("retry_mode='sometimes'", "resume"),
        lambda e: _enqueue_op(retry_mode="sometimes"),
    ),
    Case("zero-poll-interval", DBOSOptionsError, ("poll_interval=0",), lambda e: _enqueue_op(poll_interval=0)),
    Case(
        "unknown-serialization", DBOSOptionsError, ("serialization='xml'",), lambda e: _enqueue_op(serialization="xml")
    ),
    Case(
        "unknown-sensor-status",
        ValueError,
        ("'DONE'", "known statuses"),
        lambda e: _sensor("workflow", "x").__class__(task_id="s", workflow_id="x", success_statuses=["DONE"]),
    ),
    # -- bulk -----------------------------------------------------------------------------------------
    Case("empty-bulk-list-skips", AirflowSkipException, ("items is empty",), lambda e: _bulk_op([]).execute(ctx())),
    Case(
        "bad-item-shape-in-the-middle-of-1000",
        AirflowFailException,
        ("item 500", "str"),
        lambda e: _bulk_op(_thousand("oops")).execute(ctx()),
    ),
    Case(
        "unencodable-item-in-the-middle-of-1000",
        AirflowFailException,
        ("item 500", "args[0]", "portable JSON"),
        lambda e: _bulk_op(_thousand([object()])).execute(ctx()),
    ),
    Case(
        "unpicklable-item-in-the-middle-of-1000",
        AirflowFailException,
        ("item 500", "args[0]", "pickle"),
        lambda e: _bulk_op(_thousand([lambda: 1]), serialization="pickle").execute(ctx()),
    ),
    Case(
        "bulk-items-not-json",
        AirflowFailException,
        ("items is not valid JSON",),
        lambda e: _bulk_op("[[1],").execute(ctx()),
    ),
    Case(
        "bulk-duplicate-ids",
        AirflowFailException,
        ("item 1", "item 0", "'same'"),
        lambda e: _bulk_op([{"workflow_id": "same"}, {"workflow_id": "same"}]).execute(ctx()),
    ),
    Case(
        "bulk-per-workflow-option",
        DBOSOptionsError,
        ("deduplication_id", "name a single workflow"),
        lambda e: e.hook().enqueue_many(Q | {"deduplication_id": "d"}, [[1]]),
    ),
    # -- sending, sensing, trigger events, stored values -------------------------------------------------
    Case(
        "send-to-missing-workflow",
        dbos.error.DBOSNonExistentWorkflowError,
        ("{missing}",),
        lambda e: _send_op(e.missing, "hello").execute(ctx()),
    ),
    Case(
        "send-unencodable-message",
        AirflowFailException,
        ("message to DBOS workflow {missing}", "'t'", "object"),
        lambda e: _send_op(e.missing, object()).execute(ctx()),
    ),
    Case(
        "workflow-sensor-on-missing-workflow",
        DBOSWorkflowNotFoundError,
        ("{missing}", "{db}"),
        lambda e: _sensor("workflow", e.missing).poke(ctx()),
    ),
    Case(
        "event-sensor-on-missing-workflow",
        DBOSWorkflowNotFoundError,
        ("{missing}",),
        lambda e: _sensor("event", e.missing).poke(ctx()),
    ),
    Case(
        "malformed-trigger-event",
        DBOSTriggerEventError,
        ("unknown kind 'bogus'",),
        lambda e: _sensor("workflow", "w").execute_complete(ctx(), {"kind": "bogus", "workflow_id": "w"}),
    ),
    Case(
        "trigger-event-for-another-workflow",
        DBOSTriggerEventError,
        ("'other'", "awaited 'w'"),
        lambda e: _sensor("event", "w").execute_complete(
            ctx(), {"kind": "event_published", "workflow_id": "other", "key": "k", "value": 1}
        ),
    ),
    Case(
        "trigger-event-none",
        DBOSTriggerEventError,
        ("no event (None)",),
        lambda e: _enqueue_op(workflow_id="w").execute_complete(ctx(), None),
    ),
    Case(
        "corrupt-portable-output-row",
        DBOSUnsafeValueError,
        ("output of DBOS workflow {done}", "not valid JSON"),
        lambda e: e.hook().get_workflow_status(e.done, load_output=True),
    ),
]


def counts(engine: sa.Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(sa.text("SELECT count(*) FROM dbos.workflow_status")).scalar_one(),
            conn.execute(sa.text("SELECT count(*) FROM dbos.notifications")).scalar_one(),
        )


@pytest.fixture(scope="module")
def sysdb(system_database_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(sa.make_url(system_database_url).set(drivername="postgresql+psycopg"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def corrupt(dbos_conn: str, sysdb: sa.Engine) -> str:
    """A finished portable workflow whose stored output is then corrupted (not JSON)."""
    with DBOSHook(dbos_conn) as hook:
        wid = hook.enqueue(Q.copy(), 1).workflow_id
        assert hook.wait_for_status(wid, timeout=30, poll_interval=0.1)["status"] == "SUCCESS"
    with sysdb.begin() as conn:
        for table in ("workflow_status", "workflow_output"):
            conn.execute(sa.text(f"UPDATE dbos.{table} SET output = '{{not json' WHERE workflow_uuid = :w"), {"w": wid})
    return wid


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(
    case: Case, client: DBOSClient, sysdb: sa.Engine, corrupt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sysdb.url
    env = Env(monkeypatch, client, url, corrupt, unique("missing"), closed_port())
    before = counts(sysdb)
    with pytest.raises(case.error) as err:
        try:
            case.run(env)
        finally:
            for hook in env.hooks:
                hook.close()
    message = str(err.value)
    for name in case.names:
        wanted = name.format(
            missing=env.missing, done=env.done, db=url.database, port=env.port, host=url.host, dbport=url.port or 5432
        )
        assert wanted in message, f"{case.id}: {wanted!r} not in {message!r}"
    assert SECRET not in message
    assert counts(sysdb) == before, f"{case.id} wrote rows"


# -- through dag.test() -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def airflow_ready(dbos_conn: str, airflow_db: object) -> None:
    return None


def _fresh_dag(folder: str, dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(ROOT / folder)).get_dag(dag_id)


@pytest.mark.parametrize(
    ("conf", "names"),
    [
        ({"args": "not a list"}, ("args", "'not a list' is not of type 'array'")),
        ({"timeout": 0}, ("timeout", "0 is less than the minimum of 1")),
        ({"workflow_class_name": 7}, ("workflow_class_name", "7 is not of type")),
    ],
    ids=["args-not-an-array", "timeout-zero", "class-not-a-string"],
)
def test_params_form_value_of_the_wrong_type(
    airflow_ready: None, sysdb: sa.Engine, conf: dict[str, Any], names: tuple[str, ...]
) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    before = counts(sysdb)
    with pytest.raises(ParamValidationError) as err:
        _fresh_dag("dags", "dbos_run_workflow").test(run_conf={"queue_name": "q", "workflow_name": "wf_double", **conf})
    for name in names:
        assert name in str(err.value)
    assert counts(sysdb) == before


def test_non_json_templated_argument_fails_the_dag_run(
    airflow_ready: None, sysdb: sa.Engine, capfd: pytest.CaptureFixture[str]
) -> None:
    before = counts(sysdb)
    capfd.readouterr()
    dr = _fresh_dag("tests/dags/operators", "dbos_t_run").test(
        run_conf={"workflow_name": "wf_double", "args": "[1, 2", "timeout": None}
    )
    (ti,) = dr.get_task_instances()
    out, _ = capfd.readouterr()
    assert ti.state == "failed"
    assert "workflow_args is not valid JSON" in out and "AirflowFailException" in out
    assert ti.try_number == 1  # failed without retries
    assert counts(sysdb) == before


def test_numeric_workflow_id_from_a_form_stays_text(dbos_conn: str, client: DBOSClient) -> None:
    """``render_template_as_native_obj`` turns a typed ``123`` into an int: it is used as the id ``"123"``."""
    from dbos_airflow.operators.dbos import DBOSEnqueueOperator

    number: Any = time.time_ns()
    ti = FakeTI()
    context: Any = {"ti": ti}
    op = DBOSEnqueueOperator(
        task_id="e",
        workflow_name="wf_double",
        queue_name="q",
        workflow_id=number,
        workflow_args=[3],
        wait_for_completion=True,
        poll_interval=0.1,
        timeout=30,
    )
    assert op.execute(context) == str(number)
    assert ti.xcom["workflow_id"] == str(number) and ti.xcom["result"] == 6
