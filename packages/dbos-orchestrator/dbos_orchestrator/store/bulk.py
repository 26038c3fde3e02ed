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

import contextlib
import gc
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from dbos import DBOSPortableJSONSerializer, WorkflowSerializationFormat

from dbos_orchestrator.exceptions import (
    DBOSBulkEnqueueError,
    DBOSOptionsError,
    DBOSOrchestratorError,
    DBOSSerializationError,
)
from dbos_orchestrator.options import to_dbos_options
from dbos_orchestrator.store.batch_record import EXTENT_FIELD, BatchExtent
from dbos_orchestrator.store.existing import existing_ids, indexed_prefix

if TYPE_CHECKING:
    from dbos_orchestrator.client import DBOSClient
    from dbos_orchestrator.options import EnqueueOptions

__all__ = ["BulkItem", "enqueue_many", "normalize_items"]

log = logging.getLogger(__name__)

ITEM_KEYS = ("args", "kwargs", "workflow_id")
_ITEM_KEY_SET = frozenset(ITEM_KEYS)
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
_PORTABLE = DBOSPortableJSONSerializer()
MAX_FIXED_ARITY = 16  # positional arguments spelled out in the statement (_positional)
FIRST_CHUNK = 100  # items of the first statement: the server's wait for the client's first encoding
CHUNK = 1000  # items per statement: big enough to amortize a round trip, small enough to overlap encoding


class BulkItem(NamedTuple):
    """One workflow of a batch: its workflow id and its arguments."""

    workflow_id: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@contextlib.contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Hold the cyclic GC while a batch is built: it allocates tens of thousands of acyclic
    objects, and in an Airflow process every full collection walks a very large heap (a
    measured ~50 ms per 10,000 items). Reference counting still frees everything."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@_no_gc_pauses()  # items of a batch: tens of thousands of acyclic objects
def normalize_items(
    items: Iterable[Any], default_id: Callable[[int], str] | None = None, *, id_prefix: str | None = None
) -> list[BulkItem]:
    """Check the shape of every item and give each one a workflow id.

    An item is a mapping with the keys ``args`` (list), ``kwargs`` (dict with string keys)
    and ``workflow_id`` (str), all optional, or a list/tuple meaning just ``args``. Items
    without ``workflow_id`` get ``<id_prefix><index>``, else ``default_id(index)``, else a random UUID.

    :param items: the batch's items.
    :param default_id: the id of an item without one, by its index.
    :param id_prefix: the ids of items without one are this prefix and their index (no call per item).
    """
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise DBOSOptionsError(f"items must be a list of items, got {type(items).__name__}")
    out: list[BulkItem] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        # Exact-type checks first: isinstance() against the abstract Mapping/Sequence is slow,
        # and this loop runs once per workflow of batches of tens of thousands.
        kind = type(item)
        if kind is list or kind is tuple:  # just the arguments: nothing else to check
            args: Any = item
            kwargs: Any = {}
            workflow_id = None
        else:
            if kind is not dict and not isinstance(item, Mapping):
                raise DBOSOptionsError(
                    f"item {index}: expected a dict with keys {ITEM_KEYS} or a list of arguments, "
                    f"got {type(item).__name__}"
                )
            if not item.keys() <= _ITEM_KEY_SET:
                unknown = sorted(str(k) for k in item if k not in _ITEM_KEY_SET)
                raise DBOSOptionsError(f"item {index}: unknown key(s) {', '.join(unknown)}; valid keys are {ITEM_KEYS}")
            args = item.get("args") or ()
            kwargs = item.get("kwargs") or {}
            if type(args) not in (list, tuple) and (
                isinstance(args, (str, bytes, Mapping)) or not isinstance(args, Sequence)
            ):
                raise DBOSOptionsError(f"item {index}: args must be a list, got {type(args).__name__}")
            if type(kwargs) is not dict and not isinstance(kwargs, Mapping):
                raise DBOSOptionsError(f"item {index}: kwargs must be a dict, got {type(kwargs).__name__}")
            workflow_id = item.get("workflow_id")
        if workflow_id is None:
            if id_prefix is not None:
                workflow_id = f"{id_prefix}{index}"
            else:
                workflow_id = default_id(index) if default_id else str(uuid.uuid4())
        elif type(workflow_id) is not str or not workflow_id:
            raise DBOSOptionsError(f"item {index}: workflow_id must be a non-empty string, got {workflow_id!r}")
        if seen.setdefault(workflow_id, index) != index:
            raise DBOSOptionsError(
                f"item {index}: workflow_id {workflow_id!r} is also the id of item {seen[workflow_id]}"
            )
        out.append(BulkItem(workflow_id, tuple(args), dict(kwargs)))
    return out


# What DBOSPortableJSONSerializer.serialize does to a str/int/bool/None (it leaves them as they
# are), with one encoder built once: json.dumps builds a new one per call when given options.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_ENCODE_STR = json.encoder.encode_basestring  # a JSON string, non-ASCII kept (as ensure_ascii=False)


def _portable_text(value: Any) -> str:
    """``value`` as DBOS portable JSON text; TypeError/ValueError when it has none."""
    kind = type(value)
    if kind is int:  # exactly int: what json writes for it (a bool or an IntEnum is not this type)
        return int.__repr__(value)
    if kind is str:
        return _ENCODE_STR(value)
    if kind is bool or value is None:
        return _ENCODE(value)
    text = _PORTABLE.serialize(value)
    if "NaN" in text or "Infinity" in text:  # json.dumps writes them; Postgres' json rejects them
        json.loads(text, parse_constant=_reject_constant)
    return text


def _portable(value: Any, where: str) -> str:
    """``value`` as DBOS portable JSON text, or an error naming ``where``."""
    try:
        return _portable_text(value)
    except (TypeError, ValueError) as exc:
        raise DBOSSerializationError(
            f"{where} cannot be encoded as portable JSON: {exc}; nothing of the batch was enqueued"
        ) from None


def _encode_row(index: int, item: BulkItem) -> str:
    """One item's element of a statement's JSON array: ``[workflow id, [args...], kwargs]``."""
    try:
        args = ",".join([_portable_text(a) for a in item.args])
        kwargs = _portable_text(item.kwargs) if item.kwargs else "{}"
    except (TypeError, ValueError):
        _encode_portable(index, item)  # again, naming the argument that cannot be encoded
        raise
    return f"[{_ENCODE(item.workflow_id)},[{args}],{kwargs}]"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


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
    with _no_gc_pauses():
        return _enqueue_many(client, options, items, record_once)


def _enqueue_many(
    client: DBOSClient, options: EnqueueOptions, items: Iterable[Any], record_once: str | None = None
) -> list[str]:
    """See :func:`enqueue_many`."""
    _check_options(options)
    mapped: dict[str, Any] = dict(to_dbos_options(options))
    if isinstance(items, list) and all(isinstance(i, BulkItem) for i in items):
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
        shared_prefix = indexed_prefix(ids) if engine.dialect.name == "postgresql" else None
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
    return [item.workflow_id for item in batch]


def _only_record(mapped: Mapping[str, Any], key: str) -> bool:
    """The attributes are exactly one record (a dict) under ``key``: nothing else would be lost on the other items."""
    attributes = mapped.get("attributes")
    return isinstance(attributes, dict) and list(attributes) == [key] and isinstance(attributes[key], dict)


def _created_at(conn: sa.Connection, workflow_id: str) -> int:
    """The ``created_at`` DBOS' SQL function gave ``workflow_id`` (the transaction's time, shared by the batch)."""
    from dbos._schemas.system_database import SystemSchema

    ws = SystemSchema.workflow_status
    return int(conn.execute(sa.select(ws.c.created_at).where(ws.c.workflow_uuid == workflow_id)).scalar_one())


def _encode_portable(index: int, item: BulkItem) -> tuple[list[str], str]:
    """The portable JSON text of each positional argument and of the kwargs of one item."""
    where = f"item {index} ({item.workflow_id})"
    args = [_portable(a, f"{where}: args[{n}]") for n, a in enumerate(item.args)]
    try:
        return args, _portable(item.kwargs, f"{where}: kwargs")
    except DBOSSerializationError:
        for key, value in item.kwargs.items():  # name the culprit
            _portable(value, f"{where}: kwargs[{key!r}]")
        raise


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
            yield ("[" + ",".join([_encode_row(i, batch[i]) for i in todo[start:end]]) + "]",)

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
