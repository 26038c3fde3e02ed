"""Schedules as code: apply a set (create, update, and delete the ones of a prefix that are no
longer in it), pause and resume, trigger now (once per key), backfill a window; every schedule's
next run.

DBOS' client writes (``apply_schedules``: one transaction; ``delete_schedule``,
``pause_schedule``/``resume_schedule``, ``trigger_schedule``, ``backfill_schedule``); reads go
through dbos' ``workflow_schedules`` table definition and never load a schedule's ``context``.
dbos unpickles that context to trigger or backfill (the client's serializer), so both refuse a
schedule whose stored context is anything but ``None`` unless pickles are allowed.
"""

from __future__ import annotations

import base64
import pickle
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from dbos_orchestrator.exceptions import DBOSOptionsError, DBOSUnsafeValueError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from dbos_orchestrator.client import DBOSClient

__all__ = [
    "SCHEDULE_FIELDS",
    "TRIGGER_KEY_ATTRIBUTE",
    "apply_schedules",
    "backfill_schedule",
    "check_schedule",
    "list_schedules",
    "next_runs",
    "set_schedule_paused",
    "trigger_schedule",
]

SCHEDULE_FIELDS = (
    "schedule_name",
    "workflow_name",
    "schedule",
    "workflow_class_name",
    "context",
    "automatic_backfill",
    "cron_timezone",
    "queue_name",
    "application_name",
)
# The workflow attribute that remembers which call triggered a schedule (a retry finds it).
TRIGGER_KEY_ATTRIBUTE = "dbos_trigger_key"
# ``None`` pickled by any protocol dbos' DefaultSerializer may have used: the only context read without allow_pickle.
_NONE_CONTEXTS = frozenset(base64.b64encode(pickle.dumps(None, protocol=p)).decode() for p in range(2, 6))


def _text(where: str, name: str, value: Any, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise DBOSOptionsError(f"{where}{name}={value!r} must be a non-empty string")
    return value


def _croniter() -> Any:
    from croniter import croniter

    return croniter


def check_schedule(entry: Mapping[str, Any], index: int | None = None) -> dict[str, Any]:
    """One schedule definition with every field checked by name (cron, timezone, names)."""
    where = "" if index is None else f"schedules[{index}]."
    if not isinstance(entry, dict):
        raise DBOSOptionsError(f"{where or 'schedule '}must be a dict, got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(SCHEDULE_FIELDS))
    if unknown:
        raise DBOSOptionsError(f"{where}unknown field(s) {', '.join(unknown)}; valid: {', '.join(SCHEDULE_FIELDS)}")
    out: dict[str, Any] = {}
    for name in ("schedule_name", "workflow_name", "schedule"):
        out[name] = _text(where, name, entry.get(name), required=True)
    for name in ("workflow_class_name", "cron_timezone", "queue_name", "application_name"):
        value = _text(where, name, entry.get(name), required=False)
        if value is not None:
            out[name] = value
    if not _croniter().is_valid(out["schedule"], second_at_beginning=True):
        raise DBOSOptionsError(
            f"{where}schedule={out['schedule']!r} is not a valid cron expression (5 fields, or 6 with seconds first)"
        )
    if "cron_timezone" in out:
        try:
            ZoneInfo(out["cron_timezone"])
        except Exception:  # noqa: BLE001 - ZoneInfo raises several kinds for a bad name
            raise DBOSOptionsError(f"{where}cron_timezone={out['cron_timezone']!r} is not an IANA time zone") from None
    backfill = entry.get("automatic_backfill", False)
    if not isinstance(backfill, bool):
        raise DBOSOptionsError(f"{where}automatic_backfill={backfill!r} must be true or false")
    out["automatic_backfill"] = backfill
    if entry.get("context") is not None:
        out["context"] = entry["context"]
    return out


def next_run(cron: str, cron_timezone: str | None, after: datetime | None = None) -> datetime:
    """The next time ``cron`` fires after ``after`` (now), as DBOS evaluates it (in ``cron_timezone``, UTC default)."""
    tz = ZoneInfo(cron_timezone) if cron_timezone else timezone.utc
    start = (after or datetime.now(timezone.utc)).astimezone(tz)
    nxt: datetime = _croniter()(cron, start, second_at_beginning=True).get_next(datetime)
    return nxt


def list_schedules(client: DBOSClient, *, prefix: str | None = None) -> list[dict[str, Any]]:
    """Every schedule (all applications; those of ``prefix``), by name, with ``next_run`` (ISO, None when
    paused); the context is not read."""
    from dbos._schemas.system_database import SystemSchema

    s = SystemSchema.workflow_schedules
    columns = [c for c in s.c if c.name not in ("context", "schedule_id")]
    statement = sa.select(*columns).order_by(s.c.schedule_name)
    if prefix:
        statement = statement.where(s.c.schedule_name.startswith(prefix, autoescape=True))
    with client.system_database_engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(statement).mappings().all()]
    for row in rows:
        active = row["status"] == "ACTIVE"
        row["next_run"] = next_run(row["schedule"], row["cron_timezone"]).isoformat() if active else None
    return rows


def next_runs(schedules: Iterable[Mapping[str, Any]]) -> list[str]:
    """One log line per schedule: name, cron, and the next run (or paused)."""
    return [
        f"{s['schedule_name']}: {s['schedule']} ({s.get('cron_timezone') or 'UTC'}) -> "
        + (f"next run {s['next_run']}" if s.get("next_run") else "paused")
        for s in schedules
    ]


def apply_schedules(
    client: DBOSClient, schedules: Sequence[Mapping[str, Any]], *, prune_prefix: str | None = None
) -> dict[str, Any]:
    """Make the database hold ``schedules``: create the new ones and update the changed ones in one
    transaction (DBOS' ``apply_schedules``; paused ones stay paused), then, with ``prune_prefix``,
    delete the schedules of that prefix that are not in the set. Every definition is checked first
    (nothing is written on bad input); applying the same set twice changes nothing.

    Returns ``{"applied": [...names], "deleted": [...names], "schedules": [...]}`` (see :func:`list_schedules`).
    """
    if isinstance(schedules, (str, bytes, dict)) or not hasattr(schedules, "__iter__"):
        raise DBOSOptionsError(f"schedules must be a list of schedule definitions, got {type(schedules).__name__}")
    checked = [check_schedule(entry, i) for i, entry in enumerate(schedules)]
    names = [c["schedule_name"] for c in checked]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DBOSOptionsError(f"schedules: schedule_name {', '.join(map(repr, duplicated))} given more than once")
    if prune_prefix is not None:
        _text("", "prune_prefix", prune_prefix, required=True)
        outside = [n for n in names if not n.startswith(prune_prefix)]
        if outside:
            raise DBOSOptionsError(
                f"schedule_name {', '.join(map(repr, outside))} does not start with prune_prefix={prune_prefix!r}: "
                "a later apply would delete it"
            )
    if checked:
        client.apply_schedules(checked)  # type: ignore[arg-type]
    deleted = []
    if prune_prefix is not None:
        for row in list_schedules(client, prefix=prune_prefix):
            if row["schedule_name"] not in names:
                client.delete_schedule(row["schedule_name"])
                deleted.append(row["schedule_name"])
    present = list_schedules(client, prefix=prune_prefix) if prune_prefix else list_schedules(client)
    return {"applied": names, "deleted": deleted, "schedules": [s for s in present if s["schedule_name"] in names]}


def _require(client: DBOSClient, name: Any) -> dict[str, Any]:
    from dbos._schemas.system_database import SystemSchema

    _text("", "schedule_name", name, required=True)
    s = SystemSchema.workflow_schedules
    with client.system_database_engine.connect() as conn:
        row = conn.execute(sa.select(s).where(s.c.schedule_name == name)).mappings().first()
    if row is None:
        raise DBOSOptionsError(f"schedule_name={name!r}: no such DBOS schedule on {client.target}")
    return dict(row)


def set_schedule_paused(client: DBOSClient, name: str, *, paused: bool) -> dict[str, Any]:
    """Pause or resume a schedule (idempotent); a missing one is an error naming it. Returns the schedule."""
    _require(client, name)
    (client.pause_schedule if paused else client.resume_schedule)(name)
    (row,) = [r for r in list_schedules(client, prefix=name) if r["schedule_name"] == name]
    return row


def _check_context(client: DBOSClient, row: Mapping[str, Any], allow_pickle: bool, what: str) -> None:
    if not allow_pickle and row["context"] not in _NONE_CONTEXTS:
        raise DBOSUnsafeValueError(
            f"schedule {row['schedule_name']!r} has a stored context, which dbos unpickles to {what} it; "
            "allow pickles on the connection to do so (it runs code chosen by whoever wrote the schedule)"
        )


def trigger_schedule(client: DBOSClient, name: str, *, key: str | None = None, allow_pickle: bool = False) -> str:
    """Run the schedule's workflow now; returns its id. With ``key``, at most once per key: the workflow
    is tagged with it (attribute :data:`TRIGGER_KEY_ATTRIBUTE`) and a later call with the same key returns
    it. (A crash between DBOS' enqueue and the tag can still trigger twice.)"""
    row = _require(client, name)
    if key is not None:
        found = client.list_workflows(
            attributes={TRIGGER_KEY_ATTRIBUTE: key}, load_input=False, load_output=False, limit=1
        )
        if found:
            return found[0].workflow_id
    _check_context(client, row, allow_pickle, "trigger")
    workflow_id = client.trigger_schedule(name).workflow_id
    if key is not None:
        client.update_workflow_attributes(workflow_id, {TRIGGER_KEY_ATTRIBUTE: key}, merge=True)
    return workflow_id


def _aware(name: str, value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise DBOSOptionsError(f"{name}={value!r} is not an ISO date-time") from None
    if not isinstance(value, datetime):
        raise DBOSOptionsError(f"{name}={value!r} must be a date-time")
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def backfill_schedule(
    client: DBOSClient, name: str, start: Any, end: Any, *, allow_pickle: bool = False, max_runs: int = 10_000
) -> list[str]:
    """Enqueue every run of the schedule strictly between ``start`` and ``end`` (naive: UTC) that did not
    run yet (DBOS' deterministic ids: a retry enqueues nothing new); returns all their ids.

    ``end`` may not be in the future (DBOS would run future times now), ``start`` must be before it, and a
    window of more than ``max_runs`` runs is refused before anything is enqueued.
    """
    row = _require(client, name)
    first, last = _aware("start", start), _aware("end", end)
    if last > datetime.now(timezone.utc) + timedelta(seconds=1):
        raise DBOSOptionsError(f"end={last.isoformat()} is in the future: DBOS would run those times now")
    if first >= last:
        raise DBOSOptionsError(f"start={first.isoformat()} must be before end={last.isoformat()}")
    tz = ZoneInfo(row["cron_timezone"]) if row["cron_timezone"] else timezone.utc
    it = _croniter()(row["schedule"], first.astimezone(tz), second_at_beginning=True)
    count = 0
    while it.get_next(datetime) < last:
        count += 1
        if count > max_runs:
            raise DBOSOptionsError(f"start..end holds more than max_runs={max_runs} runs of {name!r}; split the window")
    if count == 0:
        return []
    _check_context(client, row, allow_pickle, "backfill")
    return [h.workflow_id for h in client.backfill_schedule(name, first, last)]
