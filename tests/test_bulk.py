"""Bulk enqueue against a real DBOS worker and Postgres: one transaction, all or nothing, idempotent."""

from __future__ import annotations

import dataclasses
import importlib.util
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowFailException
from conftest import ROOT, unique
from dbos_orchestrator.exceptions import DBOSBulkEnqueueError, DBOSOptionsError, DBOSSerializationError

from dbos_airflow.contract.ownership import Owner
from dbos_airflow.hooks.dbos import DBOSHook
from dbos_airflow.operators.bulk import DBOSBulkEnqueueOperator

if TYPE_CHECKING:
    from collections.abc import Iterator

NOBODY = "q_bulk_nobody"  # a queue no worker polls: rows stay ENQUEUED for inspection


def _rows(url: str, ids: list[str]) -> list[Any]:
    """(workflow_uuid, status, serialization, xmin, created_at, updated_at) of the workflows among ``ids``.

    ``xmin`` is the id of the transaction that wrote the workflow's input row (workers update
    the status row, never the input row). DBOS' SQL function writes in a subtransaction of its
    own (its EXCEPTION block), so for it ``created_at`` tells the transaction apart instead: the
    function stamps ``now()``, the start time of the *top-level* transaction.
    """
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    sa.text(
                        "SELECT s.workflow_uuid, s.status, s.serialization, i.xmin::text AS xmin, s.created_at, s.updated_at "
                        "FROM dbos.workflow_status s JOIN dbos.workflow_input i USING (workflow_uuid) "
                        "WHERE s.workflow_uuid = ANY(:ids) ORDER BY s.workflow_uuid"
                    ),
                    {"ids": ids},
                )
            )
    finally:
        engine.dispose()


def _count_prefix(url: str, prefix: str) -> int:
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT count(*) FROM dbos.workflow_status WHERE workflow_uuid LIKE :p"),
                    {"p": prefix + "%"},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _wait_all_ended(hook: DBOSHook, ids: list[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = {wid: hook.get_workflow_status(wid, load_output=True) or {} for wid in ids}
        if all(s.get("status") not in (None, "ENQUEUED", "PENDING") for s in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            return statuses
        time.sleep(0.2)


@pytest.fixture
def hook(dbos_conn: str) -> Iterator[DBOSHook]:
    h = DBOSHook(dbos_conn)
    yield h
    h.close()


def _items(prefix: str, n: int) -> list[dict[str, Any]]:
    return [{"args": [i], "workflow_id": f"{prefix}-{i}"} for i in range(n)]


# -- the hook --------------------------------------------------------------------------------


def test_bulk_is_one_transaction(hook: DBOSHook, system_database_url: str) -> None:
    prefix = unique("bulk-tx")
    ids = hook.enqueue_many({"workflow_name": "wf_double", "queue_name": NOBODY}, _items(prefix, 2000))
    assert ids == [f"{prefix}-{i}" for i in range(2000)]
    rows = _rows(system_database_url, ids)
    assert len(rows) == 2000
    # now() is constant within a transaction: 2,000 separate ones would not share one timestamp.
    assert len({r.created_at for r in rows}) == 1, "rows were written by more than one transaction"
    assert {(r.status, r.serialization) for r in rows} == {("ENQUEUED", "portable_json")}


def test_the_worker_runs_every_bulk_enqueued_workflow(hook: DBOSHook) -> None:
    prefix = unique("bulk")
    ids = hook.enqueue_many({"workflow_name": "wf_double", "queue_name": "q"}, _items(prefix, 50))
    statuses = _wait_all_ended(hook, ids)
    assert {wid: (s["status"], s.get("output")) for wid, s in statuses.items()} == {
        f"{prefix}-{i}": ("SUCCESS", 2 * i) for i in range(50)
    }


def test_bulk_kwargs_and_list_items_reach_the_workflow(hook: DBOSHook) -> None:
    prefix = unique("bulk-kw")
    items: list[Any] = [
        {"args": [1, "a"], "kwargs": {"k": {"nested": [1.5, None]}}, "workflow_id": f"{prefix}-0"},
        [2, 3],  # a bare list is the positional args
    ]
    ids = hook.enqueue_many({"workflow_name": "wf_echo", "queue_name": "q"}, items)
    assert ids[0] == f"{prefix}-0"
    statuses = _wait_all_ended(hook, ids)
    assert statuses[ids[0]]["output"] == {"args": [1, "a"], "kwargs": {"k": {"nested": [1.5, None]}}}
    assert statuses[ids[1]]["output"] == {"args": [2, 3], "kwargs": {}}


@pytest.mark.parametrize(
    "arguments",
    [[[1, "a"], [2, 3]], [[], []], [[1, 'q"\\é\n\u2028'], [2, {"b": [None]}, True, None, -(10**20)], []]],
    ids=["same-count", "none", "mixed-counts"],  # ARRAY[e->1->0, ...] / ARRAY[]::json[] / a subquery per item
)
def test_positional_arguments_reach_the_workflow_in_order(hook: DBOSHook, arguments: list[list[Any]]) -> None:
    prefix = unique("bulk-args")
    items = [{"args": args, "workflow_id": f"{prefix}-{i}"} for i, args in enumerate(arguments)]
    ids = hook.enqueue_many({"workflow_name": "wf_echo", "queue_name": "q"}, items)  # type: ignore[arg-type]
    statuses = _wait_all_ended(hook, ids)
    assert [statuses[wid]["output"] for wid in ids] == [{"args": args, "kwargs": {}} for args in arguments]


def _reads_of_existing_ids(hook: DBOSHook, options: dict[str, Any], items: list[Any]) -> list[str]:
    """The statements that look for existing ids while ``items`` are enqueued (the probe, the full check)."""
    engine = hook.get_client().system_database_engine
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "workflow_status" in statement and statement.lstrip().upper().startswith("SELECT"):
            kind = "full check" if "ANY" in statement else "range probe" if "LIMIT" in statement else statement
            seen.append(kind)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        hook.enqueue_many(options, items)  # type: ignore[arg-type]
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return seen


def test_a_new_batch_of_prefixed_ids_is_checked_by_one_range_probe(hook: DBOSHook, system_database_url: str) -> None:
    """store/existing.py: ids <prefix>0 .. <prefix><n-1> that none exists of cost one index probe, not a read
    of every id; an id in the probe's range that is not the batch's (<prefix>77) means the full check, which
    finds none of the batch and enqueues all of it; a retry's probe finds the batch, whose items stay as they are."""
    from dbos_orchestrator.store.existing import ids_sort_by_code_point

    with hook.get_client().system_database_engine.connect() as conn:
        probing = ids_sort_by_code_point(conn, "dbos")  # else every batch gets the full check
        collation = conn.execute(sa.text("SELECT datcollate FROM pg_database WHERE datname = current_database()"))
        assert probing or collation.scalar_one() not in ("C", "C.UTF-8", "C.utf8", "POSIX")
    probe, full = (["range probe"], ["range probe", "full check"]) if probing else (["full check"], ["full check"])
    prefix = unique("bulk-probe") + ":"
    options = {"workflow_name": "wf_double", "queue_name": NOBODY}
    items = [{"args": [i], "workflow_id": f"{prefix}{i}"} for i in range(40)]
    assert _reads_of_existing_ids(hook, options, items[:20]) == probe
    before = {r.workflow_uuid: (r.xmin, r.created_at, r.updated_at) for r in _rows(system_database_url, _ids(items))}
    assert _reads_of_existing_ids(hook, options, items) == full  # a retry, grown
    rows = _rows(system_database_url, _ids(items))
    assert len(rows) == 40
    assert {r.workflow_uuid: (r.xmin, r.created_at, r.updated_at) for r in rows if r.workflow_uuid in before} == before

    other = unique("bulk-probe") + ":"
    hook.enqueue({"workflow_name": "wf_double", "queue_name": NOBODY, "workflow_id": f"{other}77"}, 1)
    batch = [{"args": [i], "workflow_id": f"{other}{i}"} for i in range(5)]
    assert _reads_of_existing_ids(hook, options, batch) == full
    assert _count_prefix(system_database_url, other) == 6
    # Ids without the shape (no shared prefix and index) are read in full at once.
    assert _reads_of_existing_ids(hook, options, _items(unique("bulk-probe"), 3)[::-1]) == ["full check"]


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["workflow_id"] for item in items]


@pytest.mark.parametrize(
    ("bad_item", "error", "message"),
    [
        ({"args": [float("nan")]}, DBOSSerializationError, "item 3 (PREFIX-3): args[0] cannot be encoded"),
        ({"args": [object()]}, DBOSSerializationError, "item 3 (PREFIX-3): args[0] cannot be encoded"),
        ({"kwargs": {"when": {1: "x"}}}, DBOSSerializationError, "item 3 (PREFIX-3): kwargs['when'] cannot be"),
        ({"args": "notalist"}, DBOSOptionsError, "item 3: args must be a list"),
        ({"kwargs": [1]}, DBOSOptionsError, "item 3: kwargs must be a dict"),
        ({"arg": [1]}, DBOSOptionsError, "item 3: unknown key(s) arg"),
        (7, DBOSOptionsError, "item 3: expected a dict"),
        ({"workflow_id": "PREFIX-1"}, DBOSOptionsError, "item 3: workflow_id 'PREFIX-1' is also the id of item 1"),
    ],
)
def test_a_bad_item_is_named_and_nothing_is_enqueued(
    hook: DBOSHook, system_database_url: str, bad_item: Any, error: type[Exception], message: str
) -> None:
    prefix = unique("bulk-bad")
    items: list[Any] = _items(prefix, 6)
    if isinstance(bad_item, dict) and "workflow_id" not in bad_item:
        bad_item = {**bad_item, "workflow_id": f"{prefix}-3"}
    elif isinstance(bad_item, dict):
        bad_item = {"workflow_id": bad_item["workflow_id"].replace("PREFIX", prefix)}
    items[3] = bad_item
    with pytest.raises(error) as raised:
        hook.enqueue_many({"workflow_name": "wf_double", "queue_name": NOBODY}, items)
    assert message.replace("PREFIX", prefix) in str(raised.value)
    assert _count_prefix(system_database_url, prefix) == 0


def test_a_database_error_mid_batch_rolls_back_everything(hook: DBOSHook, system_database_url: str) -> None:
    """The last item fails inside Postgres (after the first ones were written): none survive."""
    prefix = unique("bulk-db")
    items = _items(prefix, 20)
    with pytest.raises(DBOSBulkEnqueueError, match="rolled back, nothing enqueued"):
        # priority is validated by nothing client-side here; Postgres rejects a value beyond int4.
        hook.enqueue_many({"workflow_name": "wf_double", "queue_name": NOBODY, "priority": 2**40}, items)
    assert _count_prefix(system_database_url, prefix) == 0


def test_an_id_of_another_workflow_is_refused_and_nothing_enqueued(hook: DBOSHook, system_database_url: str) -> None:
    prefix = unique("bulk-clash")
    hook.enqueue({"workflow_name": "wf_noop", "queue_name": NOBODY, "workflow_id": f"{prefix}-2"})
    with pytest.raises(DBOSBulkEnqueueError, match=f"item 2: workflow id '{prefix}-2' already belongs to workflow"):
        hook.enqueue_many({"workflow_name": "wf_double", "queue_name": NOBODY}, _items(prefix, 5))
    assert _count_prefix(system_database_url, prefix) == 1


def test_existing_ids_are_left_alone_and_the_rest_enqueued(hook: DBOSHook, system_database_url: str) -> None:
    prefix = unique("bulk-again")
    options = {"workflow_name": "wf_double", "queue_name": NOBODY}
    first = hook.enqueue_many(options, _items(prefix, 3))  # type: ignore[arg-type]
    before = {r.workflow_uuid: (r.xmin, r.created_at, r.updated_at) for r in _rows(system_database_url, first)}
    again = hook.enqueue_many(options, _items(prefix, 5))  # type: ignore[arg-type]
    assert again[:3] == first
    rows = _rows(system_database_url, again)
    assert len(rows) == 5
    assert {r.workflow_uuid: (r.xmin, r.created_at, r.updated_at) for r in rows if r.workflow_uuid in before} == before


def test_owner_record_is_written_once_for_the_batch(hook: DBOSHook, system_database_url: str) -> None:
    """docs/batch.md, "Enqueue throughput and the owner record": the operator's owner record is written
    once, on the batch's first item with the batch's extent (DBOS' client), the other items through
    DBOS' SQL function in the same transaction; the UI's readers (plugin/records.py) find the task
    instance as the owner of every item, and of nothing else that merely shares the ids' prefix."""
    from dbos_airflow.plugin import records

    run_id = unique("manual")
    op = DBOSBulkEnqueueOperator(
        task_id="bulk",
        workflow_name="wf_double",
        queue_name=NOBODY,
        items=[[i] for i in range(500)],
        dbos_conn_id="dbos_default",
    )
    ids = op.execute(_context("dag_owned", run_id))
    prefix = f"dag_owned:{run_id}:bulk:-1:"
    assert ids == [f"{prefix}{i}" for i in range(500)]
    rows = {r.workflow_uuid: r for r in _rows(system_database_url, ids)}
    engine = sa.create_engine(sa.make_url(system_database_url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            attributes = dict(
                conn.execute(
                    sa.text(
                        "SELECT workflow_uuid, attributes FROM dbos.workflow_status WHERE workflow_uuid = ANY(:ids)"
                    ),
                    {"ids": ids},
                ).all()
            )
    finally:
        engine.dispose()
    shared = {rows[w].created_at for w in ids[1:]}
    assert len(shared) == 1  # one transaction (the SQL function stamps the transaction's start)
    record = {"dag_id": "dag_owned", "run_id": run_id, "task_id": "bulk", "map_index": -1, "conn_id": "dbos_default"}
    extent = {"prefix": prefix, "count": 500, "created_at": shared.pop()}
    assert attributes[ids[0]] == {"airflow": {**record, "batch": extent}}
    assert all(attributes[w] is None for w in ids[1:])

    owner = Owner("dag_owned", run_id, "bulk", -1, "dbos_default")
    assert {w: lineage.owner for w, lineage in records.owners(hook, ids).items()} == dict.fromkeys(ids, owner)
    assert records.owned_by(hook, "dag_owned", run_id, "bulk", -1, conn_id="dbos_default") == ids  # item order
    assert records.owned_by(hook, "dag_owned", run_id, "bulk", -1, conn_id="dbos_default", limit=7) == ids[:7]
    listed = records.Filters(id_prefix=prefix, page_size=1000)
    assert sorted(records.page_ids(hook, listed, {"dag_owned"})[0]) == sorted(ids)
    assert records.page_ids(hook, listed, {"dag_other"})[0] == []

    # Ids of the batch's shape that the batch did not create are not its members: one past its count,
    # and an item deleted and made again by someone else (another transaction, so another created_at).
    client = hook.get_client()
    client.delete_workflows([ids[7]])
    time.sleep(0.01)
    for wid in (f"{prefix}500", ids[7]):
        client.enqueue({"workflow_name": "wf_double", "queue_name": NOBODY, "workflow_id": wid}, 1)
    found = records.owners(hook, [f"{prefix}500", ids[7], ids[8]])
    assert {w: lineage.owner for w, lineage in found.items()} == {f"{prefix}500": None, ids[7]: None, ids[8]: owner}
    assert ids[7] not in records.owned_by(hook, "dag_owned", run_id, "bulk", -1, conn_id="dbos_default")
    assert not {f"{prefix}500", ids[7]} & set(records.page_ids(hook, listed, {"dag_owned"})[0])

    # A retry enqueues nothing again and the owners stay.
    assert op.execute(_context("dag_owned", run_id)) == ids
    assert records.owners(hook, [ids[499]])[ids[499]].owner == owner


def test_pickle_falls_back_to_enqueue_in_transaction(hook: DBOSHook, system_database_url: str) -> None:
    prefix = unique("bulk-pickle")
    ids = hook.enqueue_many(
        {"workflow_name": "wf_double", "queue_name": "q"}, _items(prefix, 10), serialization="pickle"
    )
    rows = _rows(system_database_url, ids)
    assert {r.serialization for r in rows} == {"py_pickle"}
    assert len({r.xmin for r in rows}) == 1
    hook._settings = dataclasses.replace(hook.settings, allow_pickle=True)  # reading pickled outputs is opt-in
    statuses = _wait_all_ended(hook, ids)
    assert [statuses[w]["output"] for w in ids] == [2 * i for i in range(10)]
    bad = _items(unique("bulk-pickle-bad"), 4)
    bad[2]["args"] = [lambda: None]
    with pytest.raises(DBOSSerializationError, match=r"item 2 \(.*-2\): .*args\[0\] cannot be encoded as pickle"):
        hook.enqueue_many({"workflow_name": "wf_double", "queue_name": NOBODY}, bad, serialization="pickle")
    assert _count_prefix(system_database_url, bad[0]["workflow_id"][:-2]) == 0


def test_sqlite_system_database_uses_the_client_path(tmp_path: Path) -> None:
    from dbos import DBOS, WorkflowSerializationFormat
    from dbos_orchestrator.client import DBOSClient
    from dbos_orchestrator.store.bulk import enqueue_many

    url = f"sqlite:///{tmp_path / 'sys.sqlite'}"
    DBOS.migrate(url)
    client = DBOSClient(system_database_url=url, retry_connection_errors=False)
    try:
        opts: Any = {
            "workflow_name": "wf_double",
            "queue_name": NOBODY,
            "serialization_type": WorkflowSerializationFormat.PORTABLE,
        }
        ids = enqueue_many(client, opts, _items("sq", 4))
        assert enqueue_many(client, opts, _items("sq", 4)) == ids
        bad = _items("sq-bad", 3)
        bad[1]["args"] = [{1: "non-string key"}]
        with pytest.raises(DBOSSerializationError, match=r"item 1 \(sq-bad-1\)"):
            enqueue_many(client, opts, bad)
        rows = client.list_workflows(load_input=True, load_output=False)
        assert sorted(r.workflow_id for r in rows) == sorted(ids)
        assert {r.workflow_id: r.input["args"] if r.input else None for r in rows} == {
            f"sq-{i}": (i,) for i in range(4)
        }
    finally:
        client.destroy()


def test_per_workflow_options_are_refused(hook: DBOSHook) -> None:
    for key in ("workflow_id", "deduplication_id"):
        with pytest.raises(DBOSOptionsError, match=f"option\\(s\\) {key} name a single workflow"):
            hook.enqueue_many({"workflow_name": "wf_double", "queue_name": NOBODY, key: "x"}, [[1]])  # type: ignore[misc]


# -- the operator ----------------------------------------------------------------------------


def _context(dag_id: str, run_id: str, try_number: int = 1) -> Any:
    ti = SimpleNamespace(
        dag_id=dag_id,
        run_id=run_id,
        task_id="bulk",
        map_index=-1,
        try_number=try_number,
        xcom_push=lambda key, value: None,
    )  # the operator records its connection for the UI
    return {"ti": ti}


def test_operator_retry_with_the_same_task_instance_enqueues_nothing_new(
    dbos_conn: str, system_database_url: str
) -> None:
    run_id = unique("manual")
    op = DBOSBulkEnqueueOperator(
        task_id="bulk",
        workflow_name="wf_double",
        queue_name=NOBODY,
        items=[[i] for i in range(30)],
        dbos_conn_id=dbos_conn,
    )
    ids = op.execute(_context("dag_b", run_id))
    assert ids == [f"dag_b:{run_id}:bulk:-1:{i}" for i in range(30)]
    before = {r.workflow_uuid: (r.xmin, r.created_at, r.updated_at) for r in _rows(system_database_url, ids)}
    assert len(before) == 30
    assert op.execute(_context("dag_b", run_id, try_number=2)) == ids
    after = {r.workflow_uuid: (r.xmin, r.created_at, r.updated_at) for r in _rows(system_database_url, ids)}
    assert after == before
    assert _count_prefix(system_database_url, f"dag_b:{run_id}:") == 30


def test_operator_fails_without_retry_on_bad_items(dbos_conn: str, system_database_url: str) -> None:
    run_id = unique("manual")
    op = DBOSBulkEnqueueOperator(
        task_id="bulk",
        workflow_name="wf_double",
        queue_name=NOBODY,
        items='[[1], {"args": [2], "kwarg": {}}]',
        dbos_conn_id=dbos_conn,
    )
    with pytest.raises(AirflowFailException, match="item 1: unknown key"):
        op.execute(_context("dag_c", run_id))
    assert _count_prefix(system_database_url, f"dag_c:{run_id}:") == 0


def _load_dag(dag_id: str) -> Any:
    path = ROOT / "tests" / "dags" / "bulk" / "dbos_bulk_dags.py"
    spec = importlib.util.spec_from_file_location("dbos_bulk_dags", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(d for d in vars(module).values() if getattr(d, "dag_id", None) == dag_id)


def test_dag_crash_after_bulk_enqueue_retries_into_the_same_workflows(
    airflow_db: Path, hook: DBOSHook, system_database_url: str
) -> None:
    dag = _load_dag("dbos_t_bulk_retry")
    run = dag.test(run_conf={"batch": [[i] for i in range(8)]})
    assert run.state == "success"
    prefix = f"dbos_t_bulk_retry:{run.run_id}:bulk:-1:"
    ids = [f"{prefix}{i}" for i in range(8)]
    rows = _rows(system_database_url, ids)
    assert len(rows) == 8 and len({r.created_at for r in rows}) == 1  # written once, by the first try
    assert _count_prefix(system_database_url, prefix) == 8
    statuses = _wait_all_ended(hook, ids)
    assert [statuses[w]["output"] for w in ids] == [2 * i for i in range(8)]


def test_dag_with_a_bad_item_fails_and_enqueues_nothing(airflow_db: Path, system_database_url: str) -> None:
    dag = _load_dag("dbos_t_bulk_bad")
    run = dag.test(run_conf={"batch": [[1], [2], "three"]})
    assert run.state == "failed"
    assert _count_prefix(system_database_url, f"dbos_t_bulk_bad:{run.run_id}:") == 0
