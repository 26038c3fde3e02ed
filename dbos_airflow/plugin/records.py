"""Owner records read from DBOS' system database, each in one query (docs/ui.md, "Permissions").

* :func:`owners`: the owner of each workflow (its own record, else its parent's or the
  original's it was forked from, walking up in one recursive query);
* :func:`owned_by`: the workflows a task instance started through a connection, by their records;
* :func:`page_ids`: one page of the DBOS page's listing, with the reader's DAGs filtered in SQL.

Reads go through dbos' own table definitions on the hook's engine (schema already mapped).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dbos_airflow.contract.ownership import OWNER_KEY, Owner, owner_of

if TYPE_CHECKING:
    from collections.abc import Collection

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
        sa.func.coalesce(ws.c.parent_workflow_id, ws.c.forked_from),
        start.c.depth + 1,
    ).where(ws.c.workflow_uuid == start.c.up, _no_attributes(engine, start.c.attributes), start.c.depth < MAX_ANCESTRY)
    lineage = start.union_all(step)
    query = sa.select(lineage.c.origin, lineage.c.attributes, lineage.c.depth).order_by(
        lineage.c.origin, lineage.c.depth
    )
    found: dict[str, Lineage] = {}
    with engine.connect() as conn:
        for origin, attributes, _depth in conn.execute(query):
            owner = owner_of(attributes)
            if origin not in found or (found[origin].owner is None and owner is not None):
                found[origin] = Lineage(origin, owner)
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
        sa.select(ws.c.workflow_uuid, ws.c.forked_from)
        .where(*[_owner_field(engine, ws, k) == v for k, v in wanted.items()])
        .order_by(ws.c.created_at, ws.c.workflow_uuid)
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = [(str(wid), origin) for wid, origin in conn.execute(query)]
    ids = {wid for wid, _ in rows}
    return [wid for wid, origin in rows if origin not in ids]


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
        query = query.where(_owner_field(engine, ws, "dag_id").in_(sorted(dag_ids)))
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
