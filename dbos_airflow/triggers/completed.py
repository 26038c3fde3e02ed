"""DAGs started by DBOS workflows that end: an event trigger for Airflow's ``AssetWatcher``.

::

    from airflow.sdk import Asset, AssetWatcher, dag
    from dbos_airflow.triggers.completed import DBOSWorkflowCompletedTrigger

    failed_orders = Asset(
        "dbos_failed_orders",
        watchers=[AssetWatcher(
            name="failed_orders",
            trigger=DBOSWorkflowCompletedTrigger(workflow_name="refund_order", statuses=["ERROR"]),
        )],
    )

    @dag(schedule=[failed_orders])
    def incident(): ...

One asset event per workflow completion that matches the filters, with a JSON payload (the
asset event's ``extra["payload"]``; see :func:`completion_payload`).

Delivery
--------
* **Edges, not levels**: a completion is delivered once, when it is first seen; a workflow that
  is resumed and ends again is a new completion.
* **Watermark after storage**: the trigger runs on Airflow's shared-stream ack mode
  (:mod:`dbos_airflow.triggers.delivery`): the feed position (``completed_at`` + workflow id,
  and the ids delivered in the last few seconds) is stored in the asset's ``asset_state_store``
  under :attr:`DBOSWorkflowCompletedTrigger.state_key` only after Airflow confirmed it stored
  the asset events it covers. Completions while no triggerer runs are delivered when one starts
  again, in order, in pages.
* **Never lost; twice only in one window**: after a triggerer is killed, the events Airflow had
  stored but whose confirmation had not yet become a stored position (about one triggerer loop)
  come again; and when Airflow moves a trigger to another triggerer while the first one still
  runs, both may deliver for a while. Airflow stores the asset event and the position in two
  transactions and gives a trigger no way to read asset events back, so exactly-once across a
  kill is not possible on Airflow 3.3. Each payload has a stable ``completion_key`` for
  consumers that must deduplicate.
* **Without asset_state_store** (the trigger run outside a triggerer's asset watcher): the
  position lives only in memory. On every start the trigger replays the last
  ``lookback_without_state_store`` seconds (default one hour): duplicates rather than losses.
  A warning says so in the trigger log.
* **Shared polling**: every watcher of one connection in a triggerer is served by the
  connection's waiter (:mod:`dbos_airflow.waiting.waiter`): one statement per feed tick
  (0.2 s) for all of them, not one polling loop each.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from dbos_airflow.exceptions import DBOSOptionsError, DBOSUnsafeValueError
from dbos_airflow.hooks.dbos import DBOSHook
from dbos_airflow.status import TERMINAL_STATUSES, DBOSWorkflowStatus
from dbos_airflow.triggers.delivery import CompletionProducer, acked_when_consumer_moves_on, stream_key
from dbos_airflow.waiting.feed import Completion, CompletionFilter, FeedState, now_ms

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Hashable, Sequence

    from dbos_airflow.values import ValueReader

__all__ = ["DBOSWorkflowCompletedTrigger", "completion_payload"]

DEFAULT_LOOKBACK_WITHOUT_STORE = 3600.0
STATE_KEY_PREFIX = "dbos_completed:"
# Watchers running in this process by stream key: the producer stores positions through them.
_RUNNING: dict[Hashable, DBOSWorkflowCompletedTrigger] = {}


def _iso(epoch_ms: int | None) -> str | None:
    if epoch_ms is None:
        return None
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def completion_payload(c: Completion) -> dict[str, Any]:
    """The JSON payload of one completion (without output or error)."""
    return {
        "workflow_id": c.workflow_id,
        "name": c.name,
        "class_name": c.class_name,
        "status": c.status.value,
        "queue_name": c.queue_name,
        "app_version": c.app_version,
        "created_at": _iso(c.created_at),
        "completed_at": _iso(c.completed_at),
        "completed_at_ms": c.completed_at,
        "completion_key": f"{c.workflow_id}@{c.completed_at}",
    }


def _names(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else sorted(str(v) for v in value)


class DBOSWorkflowCompletedTrigger(BaseEventTrigger):
    """
    Yields one event per DBOS workflow that reaches a terminal status matching the filters.

    :param workflow_name: registered workflow name(s) (``Class.method`` also matches a class
        workflow); None: any.
    :param workflow_class_name: only workflows of this class.
    :param queue_name: queue name(s) the workflow ran on; None: any.
    :param statuses: terminal statuses to deliver (default: SUCCESS, ERROR, CANCELLED,
        MAX_RECOVERY_ATTEMPTS_EXCEEDED).
    :param app_version: only workflows of this application version.
    :param include_output: add the output (SUCCESS) or error message (``Name: message``) to the
        payload, read through :mod:`dbos_airflow.values`: a pickled output is not decoded unless
        the connection has ``allow_pickle`` (the payload says why instead). JSON values only.
    :param start_lookback: on the very first start (nothing stored yet), also deliver
        completions of the last this many seconds. 0: only completions from now on.
    :param lookback_without_state_store: without an ``asset_state_store`` (the trigger run
        outside an asset watcher), replay this many seconds at every start (duplicates rather
        than losses).
    :param dbos_conn_id: the ``dbos`` connection.
    """

    def __init__(
        self,
        *,
        workflow_name: str | Sequence[str] | None = None,
        workflow_class_name: str | None = None,
        queue_name: str | Sequence[str] | None = None,
        statuses: Sequence[str] | None = None,
        app_version: str | None = None,
        include_output: bool = False,
        start_lookback: float = 0.0,
        lookback_without_state_store: float = DEFAULT_LOOKBACK_WITHOUT_STORE,
        dbos_conn_id: str = DBOSHook.default_conn_name,
    ) -> None:
        super().__init__()
        self.workflow_name = _names(workflow_name)
        self.workflow_class_name = workflow_class_name
        self.queue_name = _names(queue_name)
        parsed = TERMINAL_STATUSES if statuses is None else frozenset(DBOSWorkflowStatus.parse_all(statuses))
        active = sorted(s.value for s in parsed if not s.is_terminal())
        if active:
            raise DBOSOptionsError(
                f"statuses {active} are not terminal; a completion has one of "
                f"{sorted(s.value for s in TERMINAL_STATUSES)}"
            )
        if not parsed:
            raise DBOSOptionsError("statuses is empty: nothing would ever be delivered")
        self.statuses = sorted(s.value for s in parsed)
        self.app_version = app_version
        self.include_output = bool(include_output)
        if start_lookback < 0 or lookback_without_state_store < 0:
            raise DBOSOptionsError("start_lookback and lookback_without_state_store must be >= 0")
        self.start_lookback = float(start_lookback)
        self.lookback_without_state_store = float(lookback_without_state_store)
        self.dbos_conn_id = dbos_conn_id

    # -- identity ------------------------------------------------------------------------

    def _filter_kwargs(self) -> dict[str, Any]:
        return {
            "workflow_name": self.workflow_name,
            "workflow_class_name": self.workflow_class_name,
            "queue_name": self.queue_name,
            "statuses": self.statuses,
            "app_version": self.app_version,
            "dbos_conn_id": self.dbos_conn_id,
        }

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            **self._filter_kwargs(),
            "include_output": self.include_output,
            "start_lookback": self.start_lookback,
            "lookback_without_state_store": self.lookback_without_state_store,
        }

    @property
    def state_key(self) -> str:
        """The ``asset_state_store`` key of this watcher's watermark (one per filter set)."""
        digest = hashlib.sha256(json.dumps(self._filter_kwargs(), sort_keys=True).encode()).hexdigest()[:16]
        return STATE_KEY_PREFIX + digest

    def completion_filter(self) -> CompletionFilter:
        return CompletionFilter(
            names=None if self.workflow_name is None else frozenset(self.workflow_name),
            class_name=self.workflow_class_name,
            queue_names=None if self.queue_name is None else frozenset(self.queue_name),
            statuses=frozenset(DBOSWorkflowStatus.parse_all(self.statuses)),
            app_version=self.app_version,
        )

    @cached_property
    def hook(self) -> DBOSHook:
        return DBOSHook(self.dbos_conn_id)

    # -- watermark -----------------------------------------------------------------------

    def _accessors(self) -> list[Any]:
        """One accessor per watched asset (``asset_state_store`` of Airflow >= 3.3), else none."""
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return []
        found = [*getattr(store, "_by_name", {}).values(), *getattr(store, "_by_uri", {}).values()]
        return found or [store]

    async def load_state(self) -> FeedState:
        """Where to start: the stored watermark, else now (minus the configured lookback)."""
        accessors = self._accessors()
        if not accessors:
            self.log.warning(
                "No asset_state_store (not run as an asset watcher): the DBOS completion watermark is kept "
                "in memory only. "
                "Replaying the last %.0f s of completions (duplicates are possible); completions older than "
                "that which ended while no triggerer ran are not delivered.",
                self.lookback_without_state_store,
            )
            return FeedState.starting_at(now_ms() - int(self.lookback_without_state_store * 1000))
        states = [FeedState.from_json(await _retrying(self, "read", a.aget, self.state_key)) for a in accessors]
        stored = [s for s in states if s is not None]
        if len(stored) == len(states):
            # Several assets on one watcher: start at the furthest-behind one (duplicates, not losses).
            state = min(stored, key=lambda s: s.position)
            self.log.info("Resuming DBOS completions after %s (%s)", state.position, self.state_key)
            return state
        start = now_ms() - int(self.start_lookback * 1000)
        if stored:
            start = min(start, *(s.position[0] for s in stored))
        self.log.info("No DBOS completion watermark stored under %s: starting at %s", self.state_key, start)
        state = FeedState.starting_at(start)
        # Stored before anything is delivered: a restart resumes here, not at its own "now".
        for accessor in accessors:
            await _retrying(self, "store", accessor.aset, self.state_key, state.to_json())
        return state

    async def store_state(self, state: FeedState) -> None:
        """Store the position (after Airflow stored the events it covers); retried until it is stored."""
        value = state.to_json()
        for accessor in self._accessors():
            await _retrying(self, "store", accessor.aset, self.state_key, value)

    # -- run: Airflow's shared-stream ack mode (see dbos_airflow.triggers.delivery) --------

    def shared_stream_key(self) -> Hashable:
        """This watcher's own stream; registers the running instance for its producer.

        Airflow reads the key once, when the trigger starts, on the instance that holds the
        asset's ``asset_state_store``; the producer (built from kwargs alone) stores through it.
        """
        key = stream_key(self.serialize()[1])
        _RUNNING[key] = self
        return key

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> CompletionProducer:
        trigger = _RUNNING.get(stream_key(kwargs)) or cls(**kwargs)
        trigger.log.info(
            "DBOS completions for %s in Airflow's ack mode: the position is stored once Airflow stored the events",
            trigger.state_key,
        )
        return CompletionProducer(trigger)

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        reader = await self._value_reader()
        async for completion in shared_stream:
            yield TriggerEvent(await self._payload(completion, reader))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Outside a triggerer's shared streams (tests, direct use): a completion counts as
        delivered once the consumer asks for the next event."""
        async for event in self.filter_shared_stream(acked_when_consumer_moves_on(CompletionProducer(self))):
            yield event

    async def cleanup(self) -> None:
        key = stream_key(self.serialize()[1])
        if _RUNNING.get(key) is self:
            del _RUNNING[key]
        await super().cleanup()

    async def _value_reader(self) -> ValueReader | None:
        if not self.include_output:
            return None
        from dbos_airflow.values import ValueReader

        waiter = await self.hook.get_waiter_async()
        settings = await self.hook.get_settings_async()
        return ValueReader(waiter.client, allow_pickle=settings.allow_pickle)

    async def _payload(self, c: Completion, reader: ValueReader | None) -> dict[str, Any]:
        payload = completion_payload(c)
        if reader is None:
            return payload
        try:
            if c.status.is_success():
                output, _ = await asyncio.to_thread(reader.output_and_error, c.workflow_id)
                payload["output"] = _json_safe(output)
            else:
                payload["error"] = await asyncio.to_thread(reader.error_message, c.workflow_id)
        except DBOSUnsafeValueError as exc:
            payload["output"], payload["output_not_decoded"] = None, str(exc)
        except Exception as exc:  # noqa: BLE001 - the event is delivered; the payload says what is missing
            self.log.warning("Could not read the outcome of DBOS workflow %s", c.workflow_id, exc_info=True)
            payload["output_not_decoded"] = f"could not be read: {type(exc).__name__}: {exc}"
        return payload


async def _retrying(trigger: DBOSWorkflowCompletedTrigger, what: str, call: Any, *args: Any) -> Any:
    """``await call(*args)``, retried with backoff: a watcher waits for Airflow's API instead of dying."""
    delay = 1.0
    while True:
        try:
            return await call(*args)
        except Exception:  # noqa: BLE001 - logged; the watcher cannot start without its watermark
            trigger.log.warning(
                "Could not %s the DBOS completion watermark; retrying in %.0fs", what, delay, exc_info=True
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


def _json_safe(value: Any) -> Any:
    """The value if it is plain JSON, else its ``repr`` (an asset event's extra is JSON)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value
