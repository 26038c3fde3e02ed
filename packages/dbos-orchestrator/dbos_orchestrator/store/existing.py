"""Which ids of a bulk enqueue already exist (a retried batch), read through DBOS' own table definition.

A batch gets its ids before anything is written, so a retry passes the same ids and must enqueue
nothing new (:mod:`dbos_orchestrator.store.bulk`). The full check reads every id of the batch
(``workflow_uuid = ANY(<array of the batch's ids>)``): one primary-key lookup per id, ~1.5 us each,
0.15 s for 100,000 ids even when none exists, which is the usual case (a batch's first try).

A batch whose ids are ``<prefix>0`` .. ``<prefix><n-1>`` (an orchestrator's derived ids) holds only
ids between ``<prefix>0`` and ``<prefix>:`` (``:`` follows ``9``) in code-point order, so **one
primary-key range probe** (``LIMIT 1``) proves that none of them exists. That holds only when the
id column's collation orders by code point (``C``, ``POSIX``, ``C.UTF-8``, ``ucs_basic``, the builtin
provider): a linguistic collation may sort ``<prefix>5`` outside the range, so there (and whenever
the probe finds any id) the full check runs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from dbos_orchestrator.exceptions import DBOSBulkEnqueueError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "code_point_ordered",
    "existing_ids",
    "ids_sort_by_code_point",
    "indexable_prefix",
    "indexed_prefix",
    "probe_bounds",
]

log = logging.getLogger(__name__)

# Collations that sort text by code point (= UTF-8 byte order), by name and by a libc locale.
_CODE_POINT_COLLATIONS = frozenset({"C", "POSIX", "ucs_basic", "pg_c_utf8"})
_CODE_POINT_LOCALES = frozenset({"C", "POSIX", "C.UTF-8", "C.utf8"})
# The collation of DBOS' id column, per database URL (without password) and schema: it never changes.
_ORDERED: dict[tuple[str, str], bool] = {}


def code_point_ordered(collation: str, provider: str, db_collate: str | None, db_provider: str | None) -> bool:
    """Whether a column of collation ``collation`` (``pg_collation.collname``, its provider ``c``/``i``/``b``
    or ``d`` for the database default) sorts by code point, given the database's ``datcollate`` and
    ``datlocprovider`` (None before Postgres 15: libc).

    :param collation: the column's collation name (``default`` for the database's).
    :param provider: the collation's provider letter.
    :param db_collate: the database's ``datcollate``.
    :param db_provider: the database's ``datlocprovider`` (None when the server has no such column).
    """
    if collation != "default":
        return collation in _CODE_POINT_COLLATIONS or provider == "b"
    if db_provider == "b":  # Postgres 17's builtin provider: C and C.UTF-8 sort by code point
        return True
    return db_provider in (None, "c") and db_collate in _CODE_POINT_LOCALES


def indexable_prefix(prefix: str, count: int) -> bool:
    """Whether a batch of ``count`` ids ``<prefix>0`` .. is named by ``prefix``: at least two ids, and a
    non-empty prefix not ending in a digit (``a1`` + ``0`` or ``a`` + ``10``?).

    :param prefix: the ids' shared prefix.
    :param count: how many ids.
    """
    return count >= 2 and prefix != "" and not prefix[-1].isdigit()


def indexed_prefix(ids: Sequence[str]) -> str | None:
    """``p`` when ``ids`` are ``p0`` .. ``p<n-1>`` (:func:`indexable_prefix`), else None.

    :param ids: a batch's ids, in item order.
    """
    first = ids[0] if ids else ""
    if not first.endswith("0") or not indexable_prefix(prefix := first[:-1], len(ids)):
        return None
    for i, workflow_id in enumerate(ids):
        if workflow_id != f"{prefix}{i}":
            return None
    return prefix


def probe_bounds(prefix: str) -> tuple[str, str]:
    """The range ``[low, high)`` that holds every id ``<prefix><decimal digits>`` in code-point order.

    :param prefix: the ids' shared prefix.
    """
    return prefix + "0", prefix + ":"  # ':' is the code point after '9'


def ids_sort_by_code_point(conn: sa.Connection, schema: str) -> bool:
    """Whether DBOS' workflow id column sorts by code point on this database (read once per database).

    :param conn: a connection to DBOS' system database (Postgres).
    :param schema: DBOS' schema there.
    """
    key = (conn.engine.url.render_as_string(hide_password=True), schema)
    if key not in _ORDERED:
        row = conn.execute(
            sa.text(
                "SELECT c.collname, c.collprovider, d.datcollate, to_jsonb(d) ->> 'datlocprovider' "
                "FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation "
                "JOIN pg_database d ON d.datname = current_database() "
                "WHERE a.attrelid = to_regclass(:rel) AND a.attname = 'workflow_uuid'"
            ),
            {"rel": f'"{schema}".workflow_status'},
        ).first()
        _ORDERED[key] = row is not None and code_point_ordered(*row)
        if not _ORDERED[key]:
            log.info("DBOS' workflow ids do not sort by code point here: bulk enqueues check every id")
    return _ORDERED[key]


def _none_in_range(conn: sa.Connection, prefix: str) -> bool:
    from dbos._schemas.system_database import SystemSchema

    ws = SystemSchema.workflow_status
    low, high = probe_bounds(prefix)
    probe = sa.select(ws.c.workflow_uuid).where(ws.c.workflow_uuid >= low, ws.c.workflow_uuid < high).limit(1)
    return conn.execute(probe).first() is None


def existing_ids(
    conn: sa.Connection,
    workflow_name: str,
    class_name: str | None,
    ids: Sequence[str],
    *,
    prefix: str | None = None,
    schema: str = "dbos",
) -> dict[str, int]:
    """Ids of the batch that already exist (id -> item index); an id of another workflow is an error.

    :param conn: a connection to DBOS' system database, in the batch's transaction.
    :param workflow_name: the batch's workflow; an existing id must belong to it.
    :param class_name: the batch's workflow class (None for a function).
    :param ids: the batch's ids, in item order.
    :param prefix: when the ids are ``<prefix>0`` .. ``<prefix><n-1>``: one range probe first.
    :param schema: DBOS' schema in the system database.
    """
    from dbos._schemas.system_database import SystemSchema

    postgres = conn.dialect.name == "postgresql"
    if prefix is not None and postgres and ids_sort_by_code_point(conn, schema) and _none_in_range(conn, prefix):
        return {}
    ws = SystemSchema.workflow_status
    if postgres:  # one array parameter instead of len(ids) bound parameters
        match = ws.c.workflow_uuid == sa.any_(sa.bindparam("ids", list(ids), type_=ARRAY(sa.Text)))
    else:
        match = ws.c.workflow_uuid.in_(ids)
    rows = conn.execute(sa.select(ws.c.workflow_uuid, ws.c.name, ws.c.class_name).where(match)).all()
    if not rows:
        return {}
    index = {wid: i for i, wid in enumerate(ids)}
    for wid, name, found_class in rows:
        if name != workflow_name or found_class != class_name:
            raise DBOSBulkEnqueueError(
                f"item {index[wid]}: workflow id {wid!r} already belongs to workflow "
                f"{name!r}{f' of class {found_class!r}' if found_class else ''}, not {workflow_name!r}; "
                "nothing of the batch was enqueued"
            )
    return {wid: index[wid] for wid, _, _ in rows}
