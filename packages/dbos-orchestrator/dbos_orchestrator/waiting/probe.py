"""What the shared waiter sends to the database, and how its connections are bounded.

* :func:`wait_probe_statement`: the one statement per tick that reads the status of every
  watched workflow and which watched event keys exist, through dbos' own table definitions;
* :func:`bounded_url` / :func:`is_transient_db_error`: TCP keepalives, a TCP user timeout and a
  statement timeout on the waiter's connections, and which errors mean "the database is
  unreachable right now, wait again";
* :func:`listen_round_trip`: LISTEN, and whether notifications really reach the connection.

No Airflow import; nothing here writes or decodes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from dbos_orchestrator.status import ACTIVE_STATUSES

log = logging.getLogger("dbos_orchestrator.waiting.waiter")  # the waiter's lines, one logger

__all__ = ["bounded_url", "is_transient_db_error", "listen_round_trip", "wait_probe_statement"]

# libpq settings of the waiter's connections (seconds unless noted): a dead peer is noticed
# within ~25 s by keepalives, unacknowledged writes give up after 30 s, and no statement
# (the probe takes milliseconds) runs longer than 30 s.
CONNECTION_BOUNDS = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",  # milliseconds
}
STATEMENT_TIMEOUT_MS = 30000


def bounded_url(system_database_url: str) -> str:
    """The URL with TCP keepalives, a TCP user timeout and a statement timeout (Postgres only).

    Settings the URL already has are kept; SQLite URLs are returned unchanged.
    """
    url = sa.make_url(system_database_url)
    if url.get_backend_name() != "postgresql":
        return system_database_url
    query = {k: v for k, v in CONNECTION_BOUNDS.items() if k not in url.query}
    options = url.query.get("options", "")
    if isinstance(options, tuple):
        options = " ".join(options)
    if "statement_timeout" not in options:
        query["options"] = f"{options} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip()
    return url.update_query_dict(query).render_as_string(hide_password=False)


# The waiter checks that LISTEN works on its connection: it listens on a channel of its own too,
# notifies it from another connection and waits this long for the echo. Behind a pooler in
# transaction mode (PgBouncer's pool_mode=transaction) the echo never comes: the LISTEN ran on a
# server connection the pooler took back after that statement. The waiter then polls alone.
CHECK_CHANNEL = "dbos_orchestrator_listen_check"
LISTEN_CHECK_SECONDS = 3.0


_SAID_NO_LISTEN: set[str] = set()


def listen_round_trip(conn: sa.Connection, engine: sa.Engine, channel: str, conn_id: str, tick: float) -> bool:
    """LISTEN on ``channel`` (autocommit ``conn``) and check by a round trip that notifications arrive.

    A notification on :data:`CHECK_CHANNEL` is sent from another connection of ``engine``; when it
    has not arrived within :data:`LISTEN_CHECK_SECONDS`, the connection stops listening, one line
    per process and connection id says the waits poll every ``tick`` seconds, and the answer is False.
    """
    import secrets

    conn.exec_driver_sql(f"LISTEN {channel}")
    conn.exec_driver_sql(f"LISTEN {CHECK_CHANNEL}")
    token = secrets.token_hex(8)
    with engine.connect() as other:
        other.execute(sa.text("SELECT pg_notify(:channel, :token)"), {"channel": CHECK_CHANNEL, "token": token})
        other.commit()
        # Closed, not kept in the pool: a waiter whose waits read nothing (workflow ends) holds one
        # connection; one that reads values opens its second when it first reads (bench P9 counts them).
        other.invalidate()
    driver = conn.connection.driver_connection
    deadline = time.monotonic() + LISTEN_CHECK_SECONDS
    while (left := deadline - time.monotonic()) > 0:
        for notify in driver.notifies(timeout=left, stop_after=1):  # type: ignore[union-attr]
            if notify.channel == CHECK_CHANNEL and notify.payload == token:
                return True
    conn.exec_driver_sql("UNLISTEN *")
    if conn_id not in _SAID_NO_LISTEN:
        _SAID_NO_LISTEN.add(conn_id)
        log.warning(
            "DBOS waiter for %s: LISTEN/NOTIFY does not reach this connection (a connection pooler in "
            "transaction mode, such as PgBouncer's pool_mode=transaction?); waiting by polling every %.1fs",
            conn_id,
            tick,
        )
    return False


def is_transient_db_error(exc: BaseException) -> bool:
    """Whether ``exc`` means "the database is unreachable right now" (wait and try again).

    Covers the driver's connection errors (refused, reset, admin shutdown, timeouts), the
    statement timeout of :func:`bounded_url` and :class:`~dbos_orchestrator.exceptions.DBOSConnectionError`,
    which is what :class:`~dbos_orchestrator.client.DBOSClient` turns them into. A missing schema is not
    (on SQLite it is still an ``OperationalError``, like the driver error it replaces).
    """
    from dbos_orchestrator.exceptions import DBOSConnectionError, DBOSSchemaMissingError

    if isinstance(exc, DBOSSchemaMissingError):
        return False
    if isinstance(exc, (DBOSConnectionError, sa.exc.OperationalError, sa.exc.InterfaceError, ConnectionError)):
        return True
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


def wait_probe_statement(
    ids: list[str], pairs: list[tuple[str, str]], *, postgres: bool, ended_only: bool = False
) -> sa.Executable:
    """``(workflow_uuid, status, NULL)`` for every id and ``(workflow_uuid, NULL, key)`` for every
    published (id, key) pair among ``pairs``, in one statement.

    :param ended_only: (Postgres) only the ids that ended or do not exist (then ``status`` is NULL):
        a tick with 1,000 pending waits returns no row for the running ones, instead of 1,000 rows
        the polling thread decodes under the GIL every tick (P11 in bench/results.md).
    """
    from dbos._schemas.system_database import SystemSchema

    status, events = SystemSchema.workflow_status, SystemSchema.workflow_events
    if postgres:
        return _postgres_probe(status, events, ids, pairs, ended_only=ended_only)
    statuses = sa.select(status.c.workflow_uuid, status.c.status, sa.literal(None, sa.Text).label("key")).where(
        status.c.workflow_uuid.in_(ids)
    )
    if not pairs:
        return statuses
    present = sa.select(events.c.workflow_uuid, sa.literal(None, sa.Text), events.c.key).where(
        sa.tuple_(events.c.workflow_uuid, events.c.key).in_(pairs)
    )
    return sa.union_all(statuses, present)


def _postgres_probe(
    status: Any, events: Any, ids: list[str], pairs: list[tuple[str, str]], *, ended_only: bool = False
) -> sa.Executable:
    """The probe on Postgres: ids and (id, key) pairs as array parameters joined via ``unnest``.

    Performance (bench/p5_many_waits.py, tests/test_waiter.py): with 1,000 waits the
    ``IN (...)``/tuple-``IN`` form binds 1,000-2,000 parameters and makes Postgres plan an
    OR-list (a sequential scan when table statistics are stale, e.g. right after a bulk
    enqueue): 9-60 ms per probe, 10 probes/s. Three array parameters and a nested loop over
    the primary keys took 2.4-4.2 ms for the same 1,000 waits, whatever the statistics say
    (``unnest`` is estimated at 100 rows, so the plan is always index lookups).
    """
    text_array = ARRAY(sa.Text)
    wanted = sa.func.unnest(sa.bindparam("probe_ids", ids, type_=text_array)).table_valued("id").render_derived("w")
    if ended_only:  # a missing id comes back with a NULL status; a running one not at all
        active = [s.value for s in ACTIVE_STATUSES]
        statuses = (
            sa.select(wanted.c.id, status.c.status, sa.literal(None, sa.Text).label("key"))
            .select_from(wanted.outerjoin(status, status.c.workflow_uuid == wanted.c.id))
            .where(sa.or_(status.c.workflow_uuid.is_(None), status.c.status.not_in(active)))
            .order_by(status.c.updated_at)  # the waiter hands them over oldest commit first (missing: last)
        )
    else:
        statuses = sa.select(status.c.workflow_uuid, status.c.status, sa.literal(None, sa.Text).label("key")).join_from(
            wanted, status, status.c.workflow_uuid == wanted.c.id
        )
    if not pairs:
        return statuses
    keys = (
        sa.func.unnest(
            sa.bindparam("probe_pair_ids", [w for w, _ in pairs], type_=text_array),
            sa.bindparam("probe_pair_keys", [k for _, k in pairs], type_=text_array),
        )
        .table_valued("id", "key")
        .render_derived("p")
    )
    present = sa.select(events.c.workflow_uuid, sa.literal(None, sa.Text), events.c.key).join_from(
        keys, events, sa.and_(events.c.workflow_uuid == keys.c.id, events.c.key == keys.c.key)
    )
    return sa.union_all(statuses, present)
