"""Enqueue many DBOS workflows in one transaction: all of them, or none.

Two maintained DBOS interfaces do the writing; nothing here writes DBOS tables itself:

* **portable JSON on Postgres** (the default): DBOS' own SQL function
  ``<schema>.enqueue_workflow(...)`` (installed by DBOS' migrations, the interface DBOS
  documents for non-Python clients), called once per item by one statement over arrays of
  the items' ids and arguments, inside one transaction. It writes ``portable_json`` rows, exactly what
  ``DBOSClient.enqueue(..., serialization_type=PORTABLE)`` writes.
* **pickle, SQLite, or options the SQL function cannot express** (``attributes``, e.g. an
  orchestrator's owner record; ``workflow_id_reuse_policy``, ``shard_key``, ...):
  ``DBOSClient.enqueue_in_transaction`` for every item, in one transaction.
* **one attributes record for the whole batch** (``record_once``, e.g. an orchestrator's owner record,
  on a batch of ids ``<prefix>0`` .. ``<prefix><n-1>``): the SQL function for every item but the
  first, then the client for the first, its record extended with the batch's extent
  (:mod:`dbos_orchestrator.store.batch_record`), in the same transaction.

Every item gets a workflow id before anything is written (given, or generated), so a retry
that passes the same ids enqueues nothing new: ids that already exist are looked up first
(:mod:`dbos_orchestrator.store.existing`: one range probe for a new batch of derived ids) and
skipped, after checking that they hold the same workflow.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from dbos import WorkflowSerializationFormat

from dbos_orchestrator.exceptions import DBOSBulkEnqueueError, DBOSOptionsError, DBOSOrchestratorError
from dbos_orchestrator.options import to_dbos_options
from dbos_orchestrator.store.batch_record import EXTENT_FIELD, BatchExtent
from dbos_orchestrator.store.bulk_items import BulkItem, BulkItems, encode_row, no_gc_pauses, normalize_items
from dbos_orchestrator.store.existing import existing_ids, indexed_prefix

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from dbos_orchestrator.client import DBOSClient
    from dbos_orchestrator.options import EnqueueOptions

__all__ = ["enqueue_many"]

log = logging.getLogger(__name__)

# Options that name one workflow, not a batch: each item carries its own id.
PER_ITEM_OPTIONS = ("workflow_id", "deduplication_id", "duplication_policy")
# Options DBOS' enqueue_workflow SQL function takes; any other option means the client path.
SQL_FUNCTION_OPTIONS = frozenset(
    {
        "workflow_name",
        "queue_name",
        "class_name",
        "instance_name",
        "app_version",
        "workflow_timeout",
        "delay_seconds",
        "priority",
        "queue_partition_key",
        "authenticated_user",
        "authenticated_roles",
        "application_name",
        "serialization_type",
    }
)
MAX_FIXED_ARITY = 16  # positional arguments spelled out in the statement (_positional)
FIRST_CHUNK = 100  # items of the first statement: the server's wait for the client's first encoding
CHUNK = 1000  # items per statement: big enough to amortize a round trip, small enough to overlap encoding


def _check_options(options: Mapping[str, Any]) -> None:
    given = [k for k in PER_ITEM_OPTIONS if options.get(k) is not None]
    if given:
        raise DBOSOptionsError(
            f"bulk enqueue: option(s) {', '.join(given)} name a single workflow; give each item its own "
            "workflow_id instead (ids make a retried batch idempotent)"
        )


def enqueue_many(
    client: DBOSClient, options: EnqueueOptions, items: Iterable[Any], *, record_once: str | None = None
) -> list[str]:
    """Enqueue one workflow per item, all in one transaction; return their ids in item order.

    ``options`` are the documented :class:`EnqueueOptions` shared by every item (no
    ``workflow_id``/``deduplication_id``: those are per item). Items that already exist
    (a retried batch) are left as they are. Any error rolls the whole batch back.

    ``record_once``: when ``options["attributes"]`` is just this key's record, the batch is new,
    its ids are ``<prefix>0`` .. ``<prefix><n-1>`` and the other options fit DBOS' SQL function,
    the record is written once, on the first item, with the batch's extent
    (:mod:`dbos_orchestrator.store.batch_record`), and the other items carry no attributes;
    otherwise every item carries the attributes.
    """
    with no_gc_pauses():
        return _enqueue_many(client, options, items, record_once)


def _enqueue_many(
    client: DBOSClient, options: EnqueueOptions, items: Iterable[Any], record_once: str | None = None
) -> list[str]:
    """See :func:`enqueue_many`."""
    _check_options(options)
    mapped: dict[str, Any] = dict(to_dbos_options(options))
    if isinstance(items, BulkItems) or (isinstance(items, list) and all(isinstance(i, BulkItem) for i in items)):
        batch: list[BulkItem] = items
    else:
        batch = normalize_items(items)
    if not batch:
        return []
    engine = client.system_database_engine
    sql_ok = mapped.get("serialization_type") == WorkflowSerializationFormat.PORTABLE and engine.dialect.name == (
        "postgresql"
    )
    use_sql = sql_ok and set(mapped) <= SQL_FUNCTION_OPTIONS
    once = sql_ok and record_once is not None and set(mapped) - {"attributes"} <= SQL_FUNCTION_OPTIONS
    started = time.monotonic()
    with engine.begin() as conn:
        ids = [item.workflow_id for item in batch]
        shared_prefix = None
        if engine.dialect.name == "postgresql":  # normalize_items knows it when it named every item
            known = batch.id_prefix if isinstance(batch, BulkItems) else None
            shared_prefix = known if known is not None else indexed_prefix(ids)
        existing: dict[str, int] = {}
        if mapped.get("workflow_id_reuse_policy") != "reject":
            identity = (mapped["workflow_name"], mapped.get("class_name"))
            existing = existing_ids(conn, *identity, ids, prefix=shared_prefix, schema=client.schema or "dbos")
        todo = (
            [i for i, item in enumerate(batch) if item.workflow_id not in existing]
            if existing
            else list(range(len(batch)))
        )
        prefix = shared_prefix if once and not existing and record_once is not None else None
        if prefix is not None and record_once is not None and _only_record(mapped, record_once):
            _enqueue_sql(conn, client, mapped, batch, todo[1:])
            extent = BatchExtent(prefix, len(batch), _created_at(conn, batch[1].workflow_id))
            record = {**mapped["attributes"][record_once], EXTENT_FIELD: extent.as_json()}
            _enqueue_client(conn, client, {**options, "attributes": {record_once: record}}, batch, todo[:1])
        elif use_sql:
            _enqueue_sql(conn, client, mapped, batch, todo)
        else:
            _enqueue_client(conn, client, options, batch, todo)
    log.info(
        "Enqueued %d DBOS workflow(s) %r on queue %r in one transaction (%d already existed) in %.3fs",
        len(todo),
        mapped["workflow_name"],
        mapped["queue_name"],
        len(batch) - len(todo),
        time.monotonic() - started,
    )
    return ids


def _only_record(mapped: Mapping[str, Any], key: str) -> bool:
    """The attributes are exactly one record (a dict) under ``key``: nothing else would be lost on the other items."""
    attributes = mapped.get("attributes")
    return isinstance(attributes, dict) and list(attributes) == [key] and isinstance(attributes[key], dict)


def _created_at(conn: sa.Connection, workflow_id: str) -> int:
    """The ``created_at`` DBOS' SQL function gave ``workflow_id`` (the transaction's time, shared by the batch)."""
    from dbos._schemas.system_database import SystemSchema

    ws = SystemSchema.workflow_status
    return int(conn.execute(sa.select(ws.c.created_at).where(ws.c.workflow_uuid == workflow_id)).scalar_one())


def _chunks(count: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each statement's items: ``FIRST_CHUNK``, then ``CHUNK`` at a time."""
    bounds = [0, *range(min(FIRST_CHUNK, count), count, CHUNK), count]
    return list(zip(bounds, bounds[1:], strict=False))


def _positional(batch: list[BulkItem], todo: list[int]) -> Any:
    """The SQL of an item's positional arguments from its element ``e``: ``ARRAY[e->1->0, ...]`` when every
    item has the same number of them (a few), else a subquery per item (~10% more of the server's time)."""
    from psycopg import sql

    arities = {len(batch[i].args) for i in todo}
    if len(arities) == 1 and (arity := arities.pop()) <= MAX_FIXED_ARITY:
        elements = ", ".join(f"e->1->{n}" for n in range(arity))
        return sql.SQL(f"ARRAY[{elements}]::json[]")
    return sql.SQL("ARRAY(SELECT json_array_elements(e->1))")


def _enqueue_sql(
    conn: sa.Connection, client: DBOSClient, mapped: Mapping[str, Any], batch: list[BulkItem], todo: list[int]
) -> None:
    """One ``enqueue_workflow`` call per item, all in one statement, in the caller's transaction."""
    if not todo:
        return
    import psycopg
    from psycopg import sql

    timeout, delay = mapped.get("workflow_timeout"), mapped.get("delay_seconds")
    roles = mapped.get("authenticated_roles")
    shared: dict[str, tuple[Any, str]] = {  # argument name -> (value, SQL type)
        "workflow_name": (mapped["workflow_name"], "text"),
        "queue_name": (mapped["queue_name"], "text"),
        "class_name": (mapped.get("class_name"), "text"),
        "config_name": (mapped.get("instance_name"), "text"),
        "app_version": (mapped.get("app_version"), "text"),
        "timeout_ms": (None if timeout is None else int(timeout * 1000), "bigint"),
        "priority": (mapped.get("priority"), "int4"),
        "queue_partition_key": (mapped.get("queue_partition_key"), "text"),
        "authenticated_user": (mapped.get("authenticated_user"), "text"),
        "authenticated_roles": (json.dumps(roles) if roles else None, "text"),
        "delay_until_epoch_ms": (None if delay is None else int((time.time() + delay) * 1000), "bigint"),
        # As DBOSClient.enqueue: an unset application_name falls back to the client's own.
        "application_name": (mapped.get("application_name") or client._sys_db.app_name, "text"),
    }
    # Options shared by the batch go into the statement as quoted literals (psycopg quotes them);
    # only the three per-item values are parameters, which keeps the per-row cost down.
    constants = [
        sql.SQL("{} => {}::{}").format(sql.Identifier(name), sql.Literal(value), sql.SQL(sql_type))
        for name, (value, sql_type) in shared.items()
        if value is not None
    ]
    # One statement per chunk of items: Postgres runs the function once per element of one JSON
    # array of ``[workflow id, [positional args...], named args]`` (the items' portable JSON text,
    # joined, not re-encoded), so a chunk costs one round trip and one parse.
    statement = sql.SQL(
        "SELECT count({}.enqueue_workflow({}, positional_args => {}, "
        "named_args => e->2, workflow_id => e->>0)) FROM json_array_elements(%s::json) AS e"
    ).format(sql.Identifier(client.schema or "dbos"), sql.SQL(", ").join(constants), _positional(batch, todo))

    def chunks() -> Iterator[tuple[str]]:
        # A generator: psycopg pipelines executemany, so one chunk is encoded while the server runs
        # the one before. An encoding error stops the batch; the rollback undoes what was sent.
        # The first chunk is small: the server starts while the next one is encoded.
        for start, end in _chunks(len(todo)):
            yield ("[" + ",".join([encode_row(i, batch[i]) for i in todo[start:end]]) + "]",)

    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        with driver.cursor() as cur:
            cur.executemany(statement, chunks())
    except psycopg.Error as exc:
        raise DBOSBulkEnqueueError(
            f"bulk enqueue of {len(todo)} workflow(s) {mapped['workflow_name']!r} on queue "
            f"{mapped['queue_name']!r} failed and was rolled back, nothing enqueued: {str(exc).strip()}"
        ) from exc


def _enqueue_client(
    conn: sa.Connection, client: DBOSClient, options: EnqueueOptions, batch: list[BulkItem], todo: list[int]
) -> None:
    """``DBOSClient.enqueue_in_transaction`` for each item, in the caller's transaction."""
    for i in todo:
        item = batch[i]
        try:
            client.enqueue_in_transaction(conn, {**options, "workflow_id": item.workflow_id}, *item.args, **item.kwargs)
        except DBOSOrchestratorError as exc:
            raise type(exc)(f"item {i} ({item.workflow_id}): {exc}; nothing of the batch was enqueued") from exc
        except Exception as exc:
            raise DBOSBulkEnqueueError(
                f"item {i} ({item.workflow_id}): {type(exc).__name__}: {exc}; nothing of the batch was enqueued"
            ) from exc
