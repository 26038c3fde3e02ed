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
  kill is not possible on Airflow 3.3. Each payload has a stable ``completion_key``: DBOS
  operators with ``id_from="completion"`` derive their workflow id / idempotency key from it, so
  the work a duplicated event triggers happens once (docs/events.md, "Exactly-once work
  downstream"); :func:`triggering_completions` lists a run's completions, each once.
* **Without asset_state_store** (the trigger run outside a triggerer's asset watcher): the
  position lives only in memory. On every start the trigger replays the last
  ``lookback_without_state_store`` seconds (default one hour): duplicates rather than losses.
  A warning says so in the trigger log.
* **Shared polling**: every watcher of one connection in a triggerer is served by the
  connection's waiter (:mod:`dbos_orchestrator.waiting.waiter`): one statement per feed tick
  (0.2 s) for all of them, not one polling loop each.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from contextvars import ContextVar
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from dbos_orchestrator.exceptions import DBOSOptionsError, DBOSUnsafeValueError
from dbos_orchestrator.status import TERMINAL_STATUSES, DBOSWorkflowStatus
from dbos_orchestrator.waiting.feed import Completion, CompletionFilter, FeedState

from dbos_airflow.contract.ids import completion_key
from dbos_airflow.hooks.dbos import DBOSHook
from dbos_airflow.triggers.delivery import CompletionProducer, Watermark, acked_when_consumer_moves_on

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from dbos_orchestrator.store.values import ValueReader

__all__ = ["DBOSWorkflowCompletedTrigger", "completion_payload"]

DEFAULT_LOOKBACK_WITHOUT_STORE = 3600.0
STATE_KEY_PREFIX = "dbos_completed:"
# Airflow builds a shared stream's producer from the trigger's kwargs alone, inside the task of the
# trigger that subscribed first (asyncio tasks copy the context). That trigger hands the producer
# the one thing kwargs do not carry, its assets' watermark, through this variable of its own task.
_SUBSCRIBING: ContextVar[tuple[tuple[str, ...], Watermark] | None] = ContextVar(
    "dbos_airflow_subscribing_watermark", default=None
)


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
        "completion_key": completion_key(c.workflow_id, c.completed_at),
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
        payload, read through :mod:`dbos_orchestrator.store.values`: a pickled output is not decoded unless
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

    # -- watermark (owned by the producer: dbos_airflow.triggers.delivery) ----------------

    def watermark(self) -> Watermark:
        """This watcher's position, in its assets' ``asset_state_store`` under :attr:`state_key`."""
        return Watermark(
            key=self.state_key,
            store=getattr(self, "asset_state_store", None),
            start_lookback=self.start_lookback,
            lookback_without_state_store=self.lookback_without_state_store,
            log=self.log,
        )

    async def load_state(self) -> FeedState:
        """Where to start (:meth:`Watermark.load`)."""
        return await self.watermark().load()

    async def store_state(self, state: FeedState) -> None:
        """Store the position (:meth:`Watermark.save`)."""
        await self.watermark().save(state)

    def _producer(self, watermark: Watermark) -> CompletionProducer:
        return CompletionProducer(
            watermark=watermark, waiter=self.hook.get_waiter_async, completion_filter=self.completion_filter()
        )

    # -- run: Airflow's shared-stream ack mode (see dbos_airflow.triggers.delivery) --------

    def shared_stream_key(self) -> tuple[str, ...]:
        """This watcher's own stream: its identity (:attr:`state_key`) and the kwargs beyond the filters.

        Airflow calls it once, when the trigger starts, on the instance that holds the assets'
        ``asset_state_store``, in that trigger's own task: that is where the producer is built.
        """
        key = self._stream_key()
        _SUBSCRIBING.set((key, self.watermark()))
        return key

    def _stream_key(self) -> tuple[str, ...]:
        extra = (self.include_output, self.start_lookback, self.lookback_without_state_store)
        return ("dbos_airflow.completed", self.state_key, json.dumps(extra))

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> CompletionProducer:
        trigger = cls(**kwargs)
        handed = _SUBSCRIBING.get()
        watermark = handed[1] if handed is not None and handed[0] == trigger._stream_key() else trigger.watermark()
        trigger.log.info(
            "DBOS completions for %s in Airflow's ack mode: the position is stored once Airflow stored the events",
            trigger.state_key,
        )
        return trigger._producer(watermark)

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        reader = await self._value_reader()
        async for completion in shared_stream:
            yield TriggerEvent(await self._payload(completion, reader))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Outside a triggerer's shared streams (tests, direct use): a completion counts as
        delivered once the consumer asks for the next event."""
        producer = self._producer(self.watermark())
        async for event in self.filter_shared_stream(acked_when_consumer_moves_on(producer)):
            yield event

    async def _value_reader(self) -> ValueReader | None:
        if not self.include_output:
            return None
        return await self.hook.get_value_reader_async()

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


def _json_safe(value: Any) -> Any:
    """The value if it is plain JSON, else its ``repr`` (an asset event's extra is JSON)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value
