"""One polling loop per connection per process for every pending DBOS wait.

A triggerer may hold thousands of deferred DBOS tasks. Instead of one poll (and one pooled
connection) per task, all waits of a connection share a :class:`DBOSWaiter`:

* one thread holds one autocommit connection and, every ``tick`` seconds while anything is
  pending, runs **one** statement that reads the status of every watched workflow and which
  watched event keys exist; nothing runs while nothing is pending; a batch awaited as one
  (:mod:`dbos_orchestrator.waiting.batch`) costs one statement per batch tick whatever its size;
* on Postgres the same connection LISTENs on DBOS' ``dbos_workflow_events_channel``, so an
  event published by an application using LISTEN/NOTIFY wakes its waiters at once (streams: ``.streams``);
* values (workflow outputs, event values) are then read by the caller through
  :mod:`dbos_orchestrator.store.values` on the waiter's client (a pool of one more connection).

The probe reads DBOS' tables through ``dbos``' own table definitions; it never writes and
decodes nothing. A wait outlives a database outage wherever it is in its life: the waiter's
client is lazy (creating it while the database is down is not an error), the polling thread
reconnects every few seconds, and callers treat :func:`is_transient_db_error` as "wait again".
Only a wait's own deadline ends it. Connections are bounded (keepalives, TCP user timeout,
statement timeout: :func:`bounded_url`); the statements live in :mod:`~dbos_orchestrator.waiting.probe`.
No Airflow import. See docs/architecture.md, "How waiting works".
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbos_orchestrator.status import DBOSWorkflowStatus
from dbos_orchestrator.waiting.batch import BatchWaits
from dbos_orchestrator.waiting.feed import (
    PAGE_SIZE,
    CompletionFeed,
    CompletionFilter,
    FeedState,
    feed_statement,
    rows_to_completions,
)
from dbos_orchestrator.waiting.pending import PendingWait
from dbos_orchestrator.waiting.probe import bounded_url, listen_round_trip, wait_probe_statement
from dbos_orchestrator.waiting.progress import WaitProgress
from dbos_orchestrator.waiting.streams import STREAMS_CHANNEL, StreamWaits

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import sqlalchemy as sa

    from dbos_orchestrator.client import DBOSClient

log = logging.getLogger(__name__)

TICK_SECONDS = 0.1
FEED_TICK_SECONDS = 0.2  # completion feeds: one statement per this, for every feed of the connection
IDLE_SHUTDOWN_SECONDS = 30.0
RECONNECT_MAX_SECONDS = 5.0
EVENTS_CHANNEL = "dbos_workflow_events_channel"


@dataclass(frozen=True)
class Observation:
    """What the probe saw: the workflow's status (None: no such workflow) and whether the event exists."""

    status: DBOSWorkflowStatus | None
    event_present: bool = False

    @property
    def found(self) -> bool:
        return self.status is not None


class _Wait(PendingWait[Observation]):
    """One pending wait for a workflow's end (or, with ``key``, an event), settled in batches."""

    __slots__ = ("workflow_id", "key")

    def __init__(self, workflow_id: str, key: str | None) -> None:
        super().__init__()
        self.workflow_id = workflow_id
        self.key = key

    def timeout_message(self) -> str:
        return f"timed out waiting for DBOS workflow {self.workflow_id}"


def _settle(batch: list[tuple[_Wait, Observation]]) -> None:
    """On a waiting loop: complete the futures of one probe's batch, in its order, in one callback.

    Completing a future only queues its task (microseconds each, 1,000 in a few ms); all the batch's
    tasks are queued before whatever else reaches the loop meanwhile. In chunks (25 per callback, the
    next chunk queued behind what had arrived), a burst's later waits queued behind the triggerer's
    own follow-ups of the earlier ones (each fired event's log record, handed back from a pool thread).
    """
    for wait, obs in batch:
        if not wait.future.done():
            wait.future.set_result(obs)


class DBOSWaiter:
    """Shared waits on one DBOS system database. Get one with :func:`get_waiter`."""

    def __init__(self, conn_id: str, client: DBOSClient, *, tick: float = TICK_SECONDS) -> None:
        self.conn_id = conn_id
        self.client = client
        self.tick = tick
        self._waits: set[_Wait] = set()
        self._feeds: set[CompletionFeed] = set()
        self._last_feed_probe = 0.0
        self._feed_page_full = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.batches = BatchWaits(wake=self._wake.set)  # batches, each awaited as one: batches.observe()
        self.streams = StreamWaits(wake=self._wake.set)  # stream reads: streams.observe()
        self._stopped = False
        self._statements = 0  # run by this class (probes: all, the progress refresh's too)
        self.listening: bool | None = None  # LISTEN works on the polling connection (None: not checked yet)
        self.feed_probes = 0  # of which completion-feed statements
        self._progress = WaitProgress()  # of pending waits, for their periodic log lines
        self._thread = threading.Thread(target=self._run, name=f"dbos-waiter-{conn_id}", daemon=True)
        self._thread.start()

    # -- async side ----------------------------------------------------------------------

    async def observe(self, workflow_id: str, key: str | None = None, *, deadline: float | None = None) -> Observation:
        """Wait until the workflow is terminal or missing (or, with ``key``, the event exists).

        :param deadline: wall-clock time (``time.time()``) after which
            :class:`DBOSWaitTimeoutError` is raised.
        """
        wait = _Wait(workflow_id, key)
        with self._lock:
            if self._stopped:
                raise RuntimeError("DBOSWaiter is stopped")
            self._waits.add(wait)
        self._wake.set()
        return await wait.until(deadline, self._waits, self._lock)

    def progress(self, workflow_id: str) -> tuple[DBOSWorkflowStatus | None, tuple[int, str] | None]:
        """What the polling thread last saw of a pending wait: its status and last recorded step."""
        return self._progress.get(workflow_id)

    def _refresh_progress(self, conn: sa.Connection) -> None:
        with self._lock:
            ids = {w.workflow_id for w in self._waits}
        self._progress.refresh(conn, ids)

    @property
    def probes(self) -> int:
        """Statements run, each counted once it ran; read by tests and benchmarks."""
        return self._statements + self._progress.statements

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._waits)

    def completion_feed(self, flt: CompletionFilter, state: FeedState) -> CompletionFeed:
        """Subscribe to completions matching ``flt`` after ``state``; :meth:`close_feed` when done.

        Call on the consumer's event loop: pages are handed to it there.
        """
        feed = CompletionFeed(flt, state)
        with self._lock:
            if self._stopped:
                raise RuntimeError("DBOSWaiter is stopped")
            self._feeds.add(feed)
        self._wake.set()
        return feed

    def close_feed(self, feed: CompletionFeed) -> None:
        with self._lock:
            self._feeds.discard(feed)
            feed.closed = True

    @property
    def feeds(self) -> int:
        with self._lock:
            return len(self._feeds)

    def _busy(self) -> bool:
        with self._lock:
            return bool(self._waits or self._feeds or len(self.batches) or len(self.streams))

    # -- polling thread ------------------------------------------------------------------

    def _probe_statement(self, waits: list[_Wait], *, postgres: bool = False) -> sa.Executable:
        """On Postgres only ended or missing workflows come back (running ones' statuses come with the
        progress refresh, :mod:`~dbos_orchestrator.waiting.progress`): a tick decodes a few rows, not one
        per pending wait."""
        ids = sorted({w.workflow_id for w in waits})
        pairs = sorted({(w.workflow_id, w.key) for w in waits if w.key is not None})
        return wait_probe_statement(ids, pairs, postgres=postgres, ended_only=postgres)

    def _probe_feeds(self, conn: sa.Connection) -> None:
        """One statement for every served feed, every feed tick (at once after a full page)."""
        now = time.monotonic()
        if not self._feed_page_full and now - self._last_feed_probe < FEED_TICK_SECONDS:
            return
        with self._lock:
            feeds = [f for f in self._feeds if not f.closed]
        served = [f for f in feeds if not f.paused]
        self._feed_page_full = False
        if not served:
            return
        self._last_feed_probe = now
        rows = rows_to_completions(
            conn.execute(feed_statement(served, postgres=conn.dialect.name == "postgresql")).all()
        )
        self._statements += 1
        self.feed_probes += 1
        self._feed_page_full = len(rows) >= PAGE_SIZE
        for feed in served:
            feed._offer(rows)

    def _probe(self, conn: sa.Connection) -> None:
        self._probe_feeds(conn)
        self.batches.probe(conn)
        self.streams.probe(conn, listening=conn.dialect.name == "postgresql")
        with self._lock:
            waits = [w for w in self._waits if not w.resolved]
        if not waits:
            return
        postgres = conn.dialect.name == "postgresql"
        rows = conn.execute(self._probe_statement(waits, postgres=postgres)).all()
        self._statements += 1
        # Postgres: rows only for ended (or missing: NULL status) workflows, the others keep their
        # last known status; SQLite: a row for every existing workflow, none for a missing one.
        statuses: dict[str, str | None] = {}
        present: set[tuple[str, str]] = set()
        for wid, status, key in rows:
            if key is None:
                statuses[wid] = status
            else:
                present.add((wid, key))
        ready: list[tuple[_Wait, Observation]] = []
        for w in waits:
            if postgres and w.workflow_id not in statuses:  # exists and has not ended
                known = self._progress.running(w.workflow_id)
                if w.key is not None and (w.workflow_id, w.key) in present:  # published by a running workflow
                    ready.append((w, Observation(known or DBOSWorkflowStatus.PENDING, event_present=True)))
                continue
            text = statuses.get(w.workflow_id)
            status = None if text is None else DBOSWorkflowStatus.parse(text)
            self._progress.saw(w.workflow_id, status)
            if w.key is not None and (w.workflow_id, w.key) in present:
                ready.append((w, Observation(status, event_present=True)))
            elif status is None or status.is_terminal():
                ready.append((w, Observation(status)))
        if ready:
            # Oldest commit first (the Postgres probe returns ended rows in that order): in a burst the
            # loop resumes the batch one wait after another, and the ones that ended first have waited longest.
            rank = {wid: i for i, wid in enumerate(statuses)}
            ready.sort(key=lambda item: rank.get(item[0].workflow_id, -1))
            self._resolve(ready)

    @staticmethod
    def _resolve(ready: list[tuple[_Wait, Observation]]) -> None:
        """Hand one probe's results to their loops: one ``call_soon_threadsafe`` per loop, not per wait.

        With 1,000 waits ending together this is one wake-up of the triggerer's loop and one
        callback there, instead of 1,000 of each competing with the loop for the GIL.
        """
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Wait, Observation]]] = {}
        for wait, obs in ready:
            wait.resolved = True
            by_loop.setdefault(wait.loop, []).append((wait, obs))
        for loop, batch in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, batch)
            except RuntimeError:  # that waiting loop is gone
                pass

    def _wait_for_news(self, conn: sa.Connection, listening: bool, since: float) -> None:
        """Sleep until one tick after ``since`` (the probe's start: a slow probe, as in a burst of ends on
        a busy machine, does not stretch the period), or less when an event someone waits for is published.

        DBOS notifies ``<workflow_id>::<key>`` on every ``set_event`` (and ``write_stream``) of an application
        using LISTEN/NOTIFY; the ones nobody here waits for do not cut the tick short (nor make probes more often).
        """
        if self._feed_page_full:
            return
        deadline = since + self.tick
        if not listening:
            self._wake.wait(max(0.0, deadline - time.monotonic()))
            self._wake.clear()
            return
        driver = conn.connection.driver_connection
        with self._lock:
            watched = {f"{w.workflow_id}::{w.key}" for w in self._waits if w.key is not None}
        while (left := deadline - time.monotonic()) > 0:
            # The whole packet: psycopg yields every notification of the packet it read, and a generator left
            # after its first drops the rest (DBOS flushes its NOTIFYs in batches, so a watched one often
            # follows one nobody here waits for).
            news = list(driver.notifies(timeout=left, stop_after=1))  # type: ignore[union-attr]
            # Every one of them asked (not any()'s first): a stream's NOTIFY marks its waits due.
            if not news or any([self.streams.wakes(n.channel, n.payload, watched) for n in news]):
                return

    def _run(self) -> None:
        backoff = 1.0
        idle_since = time.monotonic()
        while not self._stopped:
            try:
                with self.client.system_database_engine.connect() as conn:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                    listen = conn.dialect.name == "postgresql" and not self.client.transaction_pooling
                    listening = self.listening = listen and listen_round_trip(
                        conn, self.client.system_database_engine, EVENTS_CHANNEL, self.conn_id, self.tick
                    )
                    if listening:
                        conn.exec_driver_sql(f"LISTEN {STREAMS_CHANNEL}")
                    backoff = 1.0
                    while not self._stopped:
                        if self._busy():
                            idle_since = time.monotonic()
                            self._probe(conn)
                            if self._progress.due():
                                self._refresh_progress(conn)
                            self._wait_for_news(conn, listening, idle_since)
                        elif time.monotonic() - idle_since > IDLE_SHUTDOWN_SECONDS:
                            self._shutdown_if_idle()
                        else:
                            self._wake.wait(1.0)
                            self._wake.clear()
            except Exception as exc:  # noqa: BLE001 - a wait must survive a database restart
                log.warning("DBOS waiter for %s: %s; retrying in %.0fs", self.conn_id, exc, backoff)
                self._wake.wait(backoff)  # stop() cuts the pause short
                self._wake.clear()
                backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)
        try:
            self.client.destroy()
        except Exception:  # noqa: BLE001 - best effort on shutdown
            log.debug("DBOS waiter for %s: client destroy failed", self.conn_id, exc_info=True)

    def _shutdown_if_idle(self) -> None:
        with _REGISTRY_LOCK, self._lock:
            if not self._waits and not self._feeds and not len(self.batches) and not len(self.streams):
                self._stopped = True
                if _REGISTRY.get(self.conn_id) is self:
                    del _REGISTRY[self.conn_id]

    def stop(self) -> None:
        """Stop the loop and release its connections (waits still pending will time out)."""
        with _REGISTRY_LOCK, self._lock:
            self._stopped = True
            if _REGISTRY.get(self.conn_id) is self:
                del _REGISTRY[self.conn_id]
        self._wake.set()
        self._thread.join(timeout=5)


_REGISTRY: dict[str, DBOSWaiter] = {}
_REGISTRY_LOCK = threading.Lock()


async def get_waiter(conn_id: str, client_kwargs: Callable[[], Awaitable[dict[str, Any]]]) -> DBOSWaiter:
    """The process-wide waiter of a ``dbos`` connection, created on first use.

    :param conn_id: the key of the waiter (one per connection per process).
    :param client_kwargs: returns the :class:`DBOSClient` keyword arguments of the connection;
        called only when the waiter has to be created.
    """
    with _REGISTRY_LOCK:
        waiter = _REGISTRY.get(conn_id)
    if waiter is not None and not waiter._stopped:
        return waiter
    kwargs: dict[str, Any] = {
        **(await client_kwargs()),
        "use_listen_notify": False,  # the waiter listens itself, on its polling connection
        "system_database_pool_size": 2,  # one held by the polling thread, one for reads and cancels
        "lazy": True,  # a trigger that starts during an outage waits, instead of failing at once
    }
    if kwargs.get("system_database_url"):
        kwargs["system_database_url"] = bounded_url(kwargs["system_database_url"])
    return await asyncio.to_thread(_create_waiter, conn_id, kwargs)


def running_waiters() -> dict[str, DBOSWaiter]:
    """The waiters of this process by connection id (for tests, benchmarks and diagnostics)."""
    with _REGISTRY_LOCK:
        return {conn_id: w for conn_id, w in _REGISTRY.items() if not w._stopped}


def _create_waiter(conn_id: str, client_kwargs: dict[str, Any]) -> DBOSWaiter:
    """Connect and start the polling thread, off the event loop; first caller wins a race."""
    from dbos_orchestrator.client import DBOSClient
    from dbos_orchestrator.init_log import quiet_initialization

    with quiet_initialization():  # one waiter serves many tasks: not a line in one task's log
        client = DBOSClient(**client_kwargs)
    with _REGISTRY_LOCK:
        existing = _REGISTRY.get(conn_id)
        if existing is None or existing._stopped:
            existing = _REGISTRY[conn_id] = DBOSWaiter(conn_id, client)
            return existing
    client.destroy()
    return existing
