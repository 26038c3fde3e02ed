"""Database-backed queues: register or update one (limits checked, each field named), list them
with their backlog by status, delete one (refused while it holds work, unless forced).

DBOS' client writes the rows (``register_queue`` with ``on_conflict="always_update"``, so a retry
writes the same row again; ``delete_queue``); the backlog is one statement over
``workflow_status`` through dbos' own table definitions.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.status import ACTIVE_STATUSES

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from dbos_orchestrator.client import DBOSClient

__all__ = [
    "BACKLOG_STATUSES",
    "QUEUE_LIMIT_FIELDS",
    "QueueBacklog",
    "check_queue_settings",
    "delete_queue",
    "list_queues",
    "queue_backlog",
    "queue_to_dict",
    "read_queues",
    "register_queue",
]

# What a queue's backlog counts: waiting (ENQUEUED, DELAYED) and running (PENDING).
BACKLOG_STATUSES = tuple(sorted(s.value for s in ACTIVE_STATUSES))
QUEUE_LIMIT_FIELDS = (
    "global_concurrency",
    "worker_concurrency",
    "partition_concurrency",
    "partition_worker_concurrency",
)
_RATE_FIELDS = ("limiter", "partition_limiter")
_DEQUEUED = "dequeued"  # the row of QueueBacklog's statement that counts what started since the wait began


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            text = str(value).strip()
            value = int(text) if text.lstrip("-").isdigit() else value
        except (TypeError, ValueError):
            pass
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DBOSOptionsError(f"{name}={value!r} must be a whole number >= 1 (or None for no limit)")
    return value


def _limiter(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != {"limit", "period"}:
        raise DBOSOptionsError(f"{name}={value!r} must be {{'limit': <int >= 1>, 'period': <seconds > 0>}}")
    period = value["period"]
    ok = isinstance(period, (int, float)) and not isinstance(period, bool) and math.isfinite(period) and period > 0
    if not ok:
        raise DBOSOptionsError(f"{name}.period={period!r} must be a number of seconds > 0")
    return {"limit": _positive_int(f"{name}.limit", value["limit"]), "period": float(period)}


def check_queue_settings(name: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``DBOSClient.register_queue`` for ``settings``, each field checked by name.

    :param name: the queue's name (non-empty text, not one of DBOS' own ``_dbos`` queues).
    :param settings: any of :data:`QUEUE_LIMIT_FIELDS`, ``limiter``, ``partition_limiter``,
        ``polling_interval_sec``, ``application_name``; None means no limit.
    """
    if not isinstance(name, str) or not name.strip():
        raise DBOSOptionsError(f"queue name={name!r} must be a non-empty string")
    if name.startswith("_dbos"):
        raise DBOSOptionsError(f"queue name={name!r}: names starting with '_dbos' are DBOS' own queues")
    allowed = {*QUEUE_LIMIT_FIELDS, *_RATE_FIELDS, "polling_interval_sec", "application_name"}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise DBOSOptionsError(f"unknown queue setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}")
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if value is None:
            continue
        if key in QUEUE_LIMIT_FIELDS:
            out[key] = _positive_int(key, value)
        elif key in _RATE_FIELDS:
            out[key] = _limiter(key, value)
        elif key == "polling_interval_sec":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
            if not ok:
                raise DBOSOptionsError(f"polling_interval_sec={value!r} must be a number of seconds > 0")
            out[key] = float(value)
        elif not isinstance(value, str) or not value:
            raise DBOSOptionsError(f"application_name={value!r} must be a non-empty string")
        else:
            out[key] = value
    return out


def read_queues(client: DBOSClient, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Registered queues (every application's) as JSON-able limits, by name: one statement over dbos'
    ``queues`` table (dbos' ``Queue`` objects read the database again on every attribute)."""
    from dbos._schemas.system_database import SystemSchema

    q = SystemSchema.queues
    statement = sa.select(q).order_by(q.c.name)
    if names is not None:
        statement = statement.where(q.c.name.in_(list(names)))
    with client.system_database_engine.connect() as conn:
        rows = conn.execute(statement).mappings().all()
    return [queue_to_dict(dict(row)) for row in rows]


def queue_to_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``queues`` row as the names :func:`register_queue` takes."""

    def rate(limit: Any, period: Any) -> dict[str, Any] | None:
        return None if limit is None else {"limit": int(limit), "period": float(period)}

    return {
        "name": row["name"],
        "global_concurrency": row["concurrency"],
        "worker_concurrency": row["worker_concurrency"],
        "partition_concurrency": row["partition_concurrency"],
        "partition_worker_concurrency": row["partition_worker_concurrency"],
        "limiter": rate(row["rate_limit_max"], row["rate_limit_period_sec"]),
        "partition_limiter": rate(row["partition_rate_limit_max"], row["partition_rate_limit_period_sec"]),
        "polling_interval_sec": row["polling_interval_sec"],
        "application_name": row["application_name"],
    }


def register_queue(client: DBOSClient, name: str, **settings: Any) -> dict[str, Any]:
    """Create the queue or update its limits to ``settings`` (checked first: nothing is written on bad
    input); returns the row as :func:`queue_to_dict`. Registering the same settings twice changes nothing."""
    from dbos_orchestrator.operations.preflight import forget_targets

    kwargs = check_queue_settings(name, settings)
    try:
        client.register_queue(name, on_conflict="always_update", **kwargs)
    except ValueError as exc:  # dbos' own cross-field rules (worker_concurrency above global_concurrency, ...)
        raise DBOSOptionsError(f"queue {name!r}: {exc}") from exc
    forget_targets(client)  # the next enqueue check sees it at once
    return read_queues(client, [name])[0]


def _backlog_statement(names: Iterable[str] | None) -> sa.Select[Any]:
    from dbos._schemas.system_database import SystemSchema

    ws = SystemSchema.workflow_status
    statement = (
        sa.select(ws.c.queue_name, ws.c.status, sa.func.count())
        .where(ws.c.status.in_(BACKLOG_STATUSES), ws.c.queue_name.is_not(None))
        .group_by(ws.c.queue_name, ws.c.status)
    )
    return statement if names is None else statement.where(ws.c.queue_name.in_(list(names)))


def _backlog_of(rows: Iterable[Any]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for queue_name, status, count in rows:
        out.setdefault(str(queue_name), {s: 0 for s in BACKLOG_STATUSES})[str(status)] = int(count)
    return out


def queue_backlog(client: DBOSClient, names: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
    """``{queue: {status: count}}`` of the active workflows (:data:`BACKLOG_STATUSES`), one statement."""
    with client.system_database_engine.connect() as conn:
        return _backlog_of(conn.execute(_backlog_statement(names)).all())


class QueueBacklog:
    """The wait for a queue's backlog to be at most ``max_backlog`` (or, with ``dequeued_since_ms``, for a
    worker to dequeue one of its workflows since then): a
    :class:`~dbos_orchestrator.waiting.batch.CountTracker` (the shared waiter probes it with one statement
    per tick, a worker with :meth:`check`). :attr:`counts` is ``{status: count}`` of :data:`BACKLOG_STATUSES`;
    :attr:`dequeued` how many of its workflows a worker started since ``dequeued_since_ms``.

    :param queue_name: the queue.
    :param max_backlog: the most active workflows it may hold (>= 0; checked, naming the field).
    :param dequeued_since_ms: also done once a workflow of the queue was dequeued at or after this time
        (epoch ms, DBOS' ``started_at``); None waits on the backlog alone.
    """

    def __init__(self, queue_name: Any, max_backlog: Any, dequeued_since_ms: Any = None) -> None:
        if not isinstance(queue_name, str) or not queue_name.strip():
            raise DBOSOptionsError(f"queue_name={queue_name!r} must be a non-empty string")
        text = str(max_backlog).strip()
        if isinstance(max_backlog, bool) or not text.isdigit():
            raise DBOSOptionsError(f"max_backlog={max_backlog!r} must be a whole number >= 0")
        if dequeued_since_ms is not None and (type(dequeued_since_ms) is not int or dequeued_since_ms < 0):
            raise DBOSOptionsError(f"dequeued_since_ms={dequeued_since_ms!r} must be epoch milliseconds (an int >= 0)")
        self.queue_name = queue_name
        self.max_backlog = int(text)
        self.dequeued_since_ms: int | None = dequeued_since_ms
        self.counts: dict[str, int] = dict.fromkeys(BACKLOG_STATUSES, 0)
        self.dequeued = 0
        self.updated = False

    @property
    def key(self) -> str:
        return f"queue {self.queue_name}"

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def statement(self, *, postgres: bool) -> sa.Executable:
        backlog = _backlog_statement([self.queue_name])
        if self.dequeued_since_ms is None:
            return backlog
        from dbos._schemas.system_database import SystemSchema

        ws = SystemSchema.workflow_status
        # Read through DBOS' index on started_at_epoch_ms: only what started since the wait began.
        dequeued = sa.select(sa.literal(self.queue_name), sa.literal(_DEQUEUED), sa.func.count()).where(
            ws.c.started_at_epoch_ms >= self.dequeued_since_ms, ws.c.queue_name == self.queue_name
        )
        return sa.union_all(backlog, dequeued)

    def update(self, rows: Iterable[Any], *, postgres: bool) -> dict[str, int]:
        rows = list(rows)
        self.dequeued = sum(int(count) for _, status, count in rows if status == _DEQUEUED)
        backlog = [row for row in rows if row[1] != _DEQUEUED]
        self.counts = _backlog_of(backlog).get(self.queue_name, dict.fromkeys(BACKLOG_STATUSES, 0))
        self.updated = True
        return self.counts

    def done(self, *, fail_fast: bool = False) -> bool:
        return self.updated and (self.total <= self.max_backlog or self.dequeued > 0)

    def check(self, client: DBOSClient) -> bool:
        """Read the backlog now (one statement; an unregistered queue fails naming the registered ones);
        whether it is small enough (or a worker dequeued from it)."""
        if not self.updated and not read_queues(client, [self.queue_name]):
            known = ", ".join(q["name"] for q in read_queues(client)) or "none"
            raise DBOSOptionsError(
                f"queue_name={self.queue_name!r} is not a registered DBOS queue; registered: {known}"
            )
        with client.system_database_engine.connect() as conn:
            self.update(conn.execute(self.statement(postgres=True)).all(), postgres=True)
        return self.done()


def list_queues(client: DBOSClient) -> list[dict[str, Any]]:
    """Every registered queue (all applications) with its limits and ``backlog`` by status, by name."""
    queues = read_queues(client)
    backlog = queue_backlog(client, [q["name"] for q in queues])
    return [{**q, "backlog": backlog.get(q["name"], {s: 0 for s in BACKLOG_STATUSES})} for q in queues]


def delete_queue(client: DBOSClient, name: str, *, force: bool = False) -> bool:
    """Delete a queue's row; False when there was none (a retry). Its active workflows would never
    run again, so a queue with a backlog is refused unless ``force``."""
    from dbos_orchestrator.operations.preflight import forget_targets

    if not isinstance(name, str) or not name:
        raise DBOSOptionsError(f"queue name={name!r} must be a non-empty string")
    if not read_queues(client, [name]):
        return False
    held = queue_backlog(client, [name]).get(name, {})
    if sum(held.values()) and not force:
        raise DBOSOptionsError(
            f"queue {name!r} still holds {sum(held.values())} active workflow(s) ({held}): they would never run; "
            "pass force=True to delete it anyway"
        )
    client.delete_queue(name)
    forget_targets(client)
    return True
