"""Fail fast on what cannot run: a queue no worker polls, an ``app_version`` no worker registered.

DBOS accepts an enqueue to any queue name and any version; a mistyped one stays ENQUEUED forever
(turn4-facts B). Before an enqueue, a front end asks :func:`check_enqueue_target`: one statement
reads the registered queues and the application versions (both through dbos' own table
definitions), kept per process for :data:`CACHE_SECONDS`, so a fan-out of tasks costs one read
per process and window, not one per task. An unknown name is re-read once (it may have been
registered since the cached read), then warned about (``"warn"``, the default, naming what is
known and the closest match), refused before anything is written (``"fail"``), or ignored.

Where the database cannot know (no queue registered at all: workers that declare queues in code,
DBOS before database-backed queues; no version registered: no worker ever launched), the check
says so and never fails.
"""

from __future__ import annotations

import difflib
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dbos_orchestrator.exceptions import DBOSOptionsError

if TYPE_CHECKING:
    from collections.abc import Callable

    from dbos_orchestrator.client import DBOSClient

__all__ = [
    "CACHE_SECONDS",
    "ON_UNKNOWN",
    "INTERNAL_QUEUE_PREFIX",
    "Targets",
    "check_enqueue_target",
    "check_on_unknown",
    "forget_targets",
    "read_targets",
    "targets",
]

CACHE_SECONDS = 10.0
ON_UNKNOWN = ("warn", "fail", "ignore")
# DBOS' own queues (``_dbos_internal_queue``): every worker polls them, none is a registered row.
INTERNAL_QUEUE_PREFIX = "_dbos"


@dataclass(frozen=True)
class Targets:
    """What the system database says can run: registered queue names and versions (newest first)."""

    queues: frozenset[str]
    versions: tuple[str, ...]
    read_at: float = field(default_factory=time.monotonic)

    @property
    def latest_version(self) -> str | None:
        return self.versions[0] if self.versions else None

    def describe_versions(self) -> str:
        if not self.versions:
            return "none"
        return ", ".join(f"{v} (latest)" if i == 0 else v for i, v in enumerate(self.versions[:10])) + (
            f" and {len(self.versions) - 10} more" if len(self.versions) > 10 else ""
        )


def read_targets(engine: sa.Engine) -> Targets:
    """One statement: every registered queue name and every application version, newest first."""
    from dbos._schemas.system_database import SystemSchema

    q, v = SystemSchema.queues, SystemSchema.application_versions
    statement = sa.union_all(
        sa.select(sa.literal("q").label("kind"), q.c.name.label("name"), sa.literal(0, sa.BigInteger).label("ts")),
        sa.select(sa.literal("v"), v.c.version_name, v.c.version_timestamp),
    )
    with engine.connect() as conn:
        rows = conn.execute(statement).all()
    queues = frozenset(str(name) for kind, name, _ in rows if kind == "q")
    versions = tuple(str(name) for _, name, _ in sorted((r for r in rows if r[0] == "v"), key=lambda r: -int(r[2])))
    return Targets(queues=queues, versions=versions)


_CACHE: dict[str, Targets] = {}
_LOCK = threading.Lock()


def _key(client: DBOSClient) -> str:
    return f"{client.target}/{client.schema}"


def targets(client: DBOSClient, *, max_age: float = CACHE_SECONDS) -> tuple[Targets, bool]:
    """The cached :class:`Targets` of the client's database (read when older than ``max_age``);
    the flag says whether this call read them."""
    key = _key(client)
    with _LOCK:
        cached = _CACHE.get(key)
    if cached is not None and time.monotonic() - cached.read_at < max_age:
        return cached, False
    fresh = read_targets(client.system_database_engine)
    with _LOCK:
        _CACHE[key] = fresh
    return fresh, True


def forget_targets(client: DBOSClient | None = None) -> None:
    """Drop the cached reads (of one client's database, or all): after registering a queue here."""
    with _LOCK:
        if client is None:
            _CACHE.clear()
        else:
            _CACHE.pop(_key(client), None)


def check_on_unknown(name: str, value: Any) -> str:
    """``value`` as one of :data:`ON_UNKNOWN`, or an error naming the parameter."""
    if value not in ON_UNKNOWN:
        raise DBOSOptionsError(f"{name}={value!r} must be one of {', '.join(map(repr, ON_UNKNOWN))}")
    return str(value)


def _closest(name: str, known: list[str]) -> str:
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _queue_problem(queue_name: str, found: Targets, target: str) -> tuple[str, bool] | None:
    """(sentence, known) for a queue the database does not list; known=False: it cannot tell."""
    if queue_name in found.queues or queue_name.startswith(INTERNAL_QUEUE_PREFIX):
        return None
    if not found.queues:
        return (
            f"cannot check queue_name={queue_name!r}: no queue is registered in the DBOS system database "
            f"{target} (workers that declare their queues in code, or DBOS before database-backed queues, "
            "record none); if no worker polls this queue the workflow stays ENQUEUED",
            False,
        )
    known = sorted(found.queues)
    return (
        f"queue_name={queue_name!r} is not a registered DBOS queue on {target}{_closest(queue_name, known)}; "
        f"registered queues: {', '.join(known[:20])}{' ...' if len(known) > 20 else ''}. "
        "No worker polls an unregistered queue: the workflow would stay ENQUEUED",
        True,
    )


def _version_problem(app_version: str, found: Targets, target: str) -> tuple[str, bool] | None:
    if app_version in found.versions:
        return None
    if not found.versions:
        return (
            f"cannot check app_version={app_version!r}: no application version is registered in {target} "
            "(no DBOS worker has launched against it yet)",
            False,
        )
    return (
        f"app_version={app_version!r} is not a version any DBOS worker registered on {target}"
        f"{_closest(app_version, list(found.versions))}; versions: {found.describe_versions()}. "
        "Only workers of that version dequeue it: the workflow would stay ENQUEUED",
        True,
    )


def check_enqueue_target(
    client: DBOSClient,
    *,
    queue_name: str | None,
    app_version: str | None = None,
    on_unknown_queue: str = "warn",
    on_unknown_version: str = "warn",
    warn: Callable[[str], Any],
) -> list[str]:
    """Check a queue and version before anything is written; returns the sentences warned.

    :param queue_name: the queue the workflow goes to (None: DBOS' internal queue, not checked).
    :param app_version: the version it is pinned to (None: the latest, not checked).
    :param on_unknown_queue: ``warn`` (log, go on), ``fail`` (raise :class:`DBOSOptionsError`) or ``ignore``.
    :param on_unknown_version: the same for ``app_version``.
    :param warn: where a warning goes (the task's log).
    """
    check_on_unknown("on_unknown_queue", on_unknown_queue)
    check_on_unknown("on_unknown_version", on_unknown_version)
    wanted = [
        (name, value, mode, rule)
        for name, value, mode, rule in (
            ("queue", queue_name, on_unknown_queue, _queue_problem),
            ("version", app_version, on_unknown_version, _version_problem),
        )
        if value and mode != "ignore"
    ]
    if not wanted:
        return []
    found, fresh = targets(client)

    def problems(now: Targets) -> list[tuple[str, bool, str]]:
        out = []
        for _, value, mode, rule in wanted:
            problem = rule(value, now, client.target)
            if problem is not None:
                out.append((*problem, mode))
        return out

    found_problems = problems(found)
    if found_problems and not fresh:  # registered since the cached read?
        found, _ = targets(client, max_age=0.0)
        found_problems = problems(found)
    said = []
    for sentence, known, mode in found_problems:
        if known and mode == "fail":
            raise DBOSOptionsError(sentence + "; nothing was enqueued")
        warn(sentence)
        said.append(sentence)
    return said
