"""Owner records read from DBOS' system database, each in one query (docs/ui.md, "Permissions").

* :func:`owners`: the owner of each workflow (its own record, else its parent's or the
  original's it was forked from, walking up in one recursive query; else, for a bulk batch's
  item, the record its batch's anchor holds: one more query);
* :func:`owned_by`: the workflows a task instance started through a connection, by their records
  (a batch's anchor standing for its members);
* :func:`page_ids`: one page of the DBOS page's listing, with the reader's DAGs filtered in SQL.

A batch's members are found only on Postgres (the bulk writer records a batch once only there).

Reads go through dbos' own table definitions on the hook's engine (schema already mapped).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from dbos_orchestrator.store.batch_record import EXTENT_FIELD, prefix_and_index
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from dbos_airflow.contract.ownership import OWNER_KEY, Owner, batch_of, has_record, owner_of

if TYPE_CHECKING:
    from collections.abc import Collection

    from dbos_orchestrator.store.batch_record import BatchExtent

    from dbos_airflow.hooks.dbos import DBOSHook

MAX_ANCESTRY = 20
MAX_OWNED = 10_000


def _table() -> sa.Table:
    from dbos._schemas.system_database import SystemSchema

    return SystemSchema.workflow_status


def _engine(hook: DBOSHook) -> sa.Engine:
    return hook.get_client().system_database_engine


def _owner_field(engine: sa.Engine, ws: sa.Table, key: str) -> sa.ColumnElement[Any]:
    """``attributes.airflow.<key>`` as text, in the database's own JSON functions."""
    if engine.dialect.name == "postgresql":
        return sa.func.jsonb_extract_path_text(ws.c.attributes, OWNER_KEY, key)
    return sa.cast(sa.func.json_extract(ws.c.attributes, f"$.{OWNER_KEY}.{key}"), sa.Text)


def _no_attributes(engine: sa.Engine, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """No attributes at all: SQL NULL, or the JSON ``null`` dbos writes for ``None``."""
    if engine.dialect.name == "postgresql":
        return sa.or_(column.is_(None), sa.func.jsonb_typeof(column) == "null")
    return sa.or_(column.is_(None), sa.cast(column, sa.Text) == "null")


@dataclass(frozen=True)
class Lineage:
    """A workflow that exists, and its owner (None: no Airflow task owns it)."""

    workflow_id: str
    owner: Owner | None


def owners(hook: DBOSHook, workflow_ids: Collection[str]) -> dict[str, Lineage]:
    """``{id: Lineage}`` for each of ``workflow_ids`` that exists, in one recursive query.

    A workflow without attributes is owned as its parent (a child workflow) or its original
    (a fork) is, up to :data:`MAX_ANCESTRY` levels; one with attributes but no owner record is
    unowned.
    """
    if not workflow_ids:
        return {}
    ws, engine = _table(), _engine(hook)
    start = (
        sa.select(
            ws.c.workflow_uuid.label("origin"),
            ws.c.workflow_uuid.label("at"),
            ws.c.attributes.label("attributes"),
            ws.c.created_at.label("created_at"),
            sa.func.coalesce(ws.c.parent_workflow_id, ws.c.forked_from).label("up"),
            sa.literal(0).label("depth"),
        )
        .where(ws.c.workflow_uuid.in_(list(workflow_ids)))
        .cte("lineage", recursive=True)
    )
    step = sa.select(
        start.c.origin,
        ws.c.workflow_uuid,
        ws.c.attributes,
        ws.c.created_at,
        sa.func.coalesce(ws.c.parent_workflow_id, ws.c.forked_from),
        start.c.depth + 1,
    ).where(ws.c.workflow_uuid == start.c.up, _no_attributes(engine, start.c.attributes), start.c.depth < MAX_ANCESTRY)
    lineage = start.union_all(step)
    query = sa.select(
        lineage.c.origin, lineage.c.at, lineage.c.attributes, lineage.c.created_at, lineage.c.depth
    ).order_by(lineage.c.origin, lineage.c.depth)
    found: dict[str, Lineage] = {}
    top: dict[str, tuple[str, int]] = {}  # origin -> its last row without a record of its own: (id, created_at)
    with engine.connect() as conn:
        for origin, at, attributes, created_at, _depth in conn.execute(query):
            owner = owner_of(attributes)
            if origin not in found or (found[origin].owner is None and owner is not None):
                found[origin] = Lineage(origin, owner)
            if has_record(attributes):
                top.pop(origin, None)
            else:
                top[origin] = (str(at), created_at)
        unowned = {o: top[o] for o, lineage_of in found.items() if lineage_of.owner is None and o in top}
        for origin, owner in _batch_owners(conn, engine, unowned).items():
            found[origin] = Lineage(origin, owner)
    return found


def _batch_owners(conn: sa.Connection, engine: sa.Engine, rows: dict[str, tuple[str, int]]) -> dict[str, Owner]:
    """``{origin: owner}`` for the rows (``origin -> (id, created_at)``, none with a record of its own) that
    are members of a bulk batch, by the record of the batch's anchor (one query)."""
    if not rows or engine.dialect.name != "postgresql":
        return {}
    wanted: dict[tuple[str, int], list[str]] = {}
    for origin, (workflow_id, created_at) in rows.items():
        split = prefix_and_index(workflow_id)
        if split is not None:
            wanted.setdefault((split[0], created_at), []).append(origin)
    if not wanted:
        return {}
    ws = _table()
    claims = [
        # A JSONB parameter holding the dict (cast from a JSON string, the string itself would be the value).
        ws.c.attributes.op("@>")(sa.literal({OWNER_KEY: {EXTENT_FIELD: {"prefix": p, "created_at": t}}}, type_=JSONB))
        for p, t in wanted
    ]
    found: dict[str, Owner] = {}
    for anchor_id, attributes in conn.execute(sa.select(ws.c.workflow_uuid, ws.c.attributes).where(sa.or_(*claims))):
        claimed = batch_of(str(anchor_id), attributes)
        if claimed is None:
            continue
        owner, extent = claimed
        for origin in wanted.get((extent.prefix, extent.created_at), []):
            workflow_id, created_at = rows[origin]
            if extent.has_member(str(anchor_id), workflow_id, created_at, own_record=False):
                found[origin] = owner
    return found


def owned_by(
    hook: DBOSHook,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    *,
    conn_id: str,
    limit: int = MAX_OWNED,
) -> list[str]:
    """Ids of the workflows this task instance started through ``conn_id``, by their owner
    records, oldest first.

    A fork made from the view copies its original's record: it descends from the task's
    workflow (reached from its view), it is not another workflow the task started.
    """
    ws, engine = _table(), _engine(hook)
    wanted = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": str(map_index), "conn_id": conn_id}
    query = (
        sa.select(ws.c.workflow_uuid, ws.c.forked_from, ws.c.attributes)
        .where(*[_owner_field(engine, ws, k) == v for k, v in wanted.items()])
        .order_by(ws.c.created_at, ws.c.workflow_uuid)
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = [(str(wid), origin, attributes) for wid, origin, attributes in conn.execute(query)]
        ids = {wid for wid, _, _ in rows}
        found: list[str] = []
        for wid, origin, attributes in rows:
            if origin in ids:
                continue
            claimed = batch_of(wid, attributes)
            found.extend(_members(conn, wid, claimed[1], limit - len(found)) if claimed else [wid])
    return found[:limit]


def _members(conn: sa.Connection, anchor_id: str, extent: BatchExtent, limit: int) -> list[str]:
    """The ids of an anchor's batch that exist as its members (the anchor included), in item order."""
    ws = _table()
    ids = extent.ids(limit)
    query = sa.select(ws.c.workflow_uuid, ws.c.created_at, ws.c.attributes).where(
        ws.c.workflow_uuid == sa.any_(sa.bindparam("ids", ids, type_=ARRAY(sa.Text))),
        sa.or_(ws.c.workflow_uuid == anchor_id, ws.c.created_at == extent.created_at),
    )
    present = {
        str(wid)
        for wid, created_at, attributes in conn.execute(query)
        if extent.has_member(anchor_id, str(wid), created_at, own_record=has_record(attributes))
    }
    return [wid for wid in ids if wid in present]


@dataclass
class Filters:
    """The DBOS page's filters (already validated); empty means "any"."""

    status: str = ""
    name: str = ""
    queue: str = ""
    id_prefix: str = ""
    since_hours: float | None = None
    page: int = 1
    page_size: int = 50


_INDEX = "^(0|[1-9][0-9]{0,17})$"  # a canonical item index (store/batch_record.py)


def _batch_member_of(ws: sa.Table, dag_ids: list[str]) -> sa.ColumnElement[bool]:
    """Postgres: ``ws``'s row is a member of a bulk batch whose anchor's owner is one of ``dag_ids``
    (the rule of :class:`~dbos_orchestrator.store.batch_record.BatchExtent` and
    :func:`~dbos_airflow.contract.ownership.batch_of`, in SQL)."""
    a = ws.alias("batch_anchor")

    def field(*path: str) -> sa.ColumnElement[Any]:
        return sa.func.jsonb_extract_path_text(a.c.attributes, OWNER_KEY, *path)

    prefix, count = field(EXTENT_FIELD, "prefix"), field(EXTENT_FIELD, "count")

    def index(workflow_id: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        tail = sa.func.substr(workflow_id, sa.func.length(prefix) + 1)
        return sa.case((tail.op("~")(_INDEX), sa.cast(tail, sa.Numeric)), else_=None)

    whole_count = sa.case((count.op("~")(_INDEX), sa.cast(count, sa.Numeric)), else_=None)
    claim = sa.func.jsonb_build_object(
        OWNER_KEY, sa.func.jsonb_build_object(EXTENT_FIELD, sa.func.jsonb_build_object("created_at", ws.c.created_at))
    )
    return sa.and_(
        sa.func.jsonb_extract_path(ws.c.attributes, OWNER_KEY).is_(None),
        sa.exists().where(
            a.c.attributes.op("@>")(claim),
            field("dag_id").in_(dag_ids),
            sa.func.starts_with(prefix, sa.func.concat(field("dag_id"), ":")),
            sa.func.starts_with(ws.c.workflow_uuid, prefix),
            sa.func.starts_with(a.c.workflow_uuid, prefix),
            index(ws.c.workflow_uuid) < whole_count,
            index(a.c.workflow_uuid) < whole_count,
            whole_count >= 2,
        ),
    )


def page_ids(hook: DBOSHook, filters: Filters, dag_ids: Collection[str] | None) -> tuple[list[str], bool]:
    """One page of workflow ids, newest first, and whether there is a next page.

    ``dag_ids`` None: every workflow (the reader may read all DAGs); else only workflows whose
    owner record names one of them (an empty collection: none).
    """
    ws, engine = _table(), _engine(hook)
    query = sa.select(ws.c.workflow_uuid)
    if dag_ids is not None:
        if not dag_ids:
            return [], False
        owned: sa.ColumnElement[bool] = _owner_field(engine, ws, "dag_id").in_(sorted(dag_ids))
        if engine.dialect.name == "postgresql":
            owned = sa.or_(owned, _batch_member_of(ws, sorted(dag_ids)))
        query = query.where(owned)
    if filters.status:
        query = query.where(ws.c.status == filters.status)
    if filters.name:
        query = query.where(ws.c.name == filters.name)
    if filters.queue:
        query = query.where(ws.c.queue_name == filters.queue)
    if filters.id_prefix:
        query = query.where(ws.c.workflow_uuid.startswith(filters.id_prefix, autoescape=True))
    if filters.since_hours is not None:
        since_ms = int(datetime.now(timezone.utc).timestamp() * 1000 - filters.since_hours * 3_600_000)
        query = query.where(ws.c.created_at >= since_ms)
    query = (
        query.order_by(ws.c.created_at.desc(), ws.c.workflow_uuid.desc())
        .limit(filters.page_size + 1)
        .offset((filters.page - 1) * filters.page_size)
    )
    with engine.connect() as conn:
        ids = [str(row[0]) for row in conn.execute(query)]
    return ids[: filters.page_size], len(ids) > filters.page_size
