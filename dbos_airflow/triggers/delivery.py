"""Delivery of DBOS completions to Airflow: the watermark moves only after Airflow stored the events.

:class:`~dbos_airflow.triggers.completed.DBOSWorkflowCompletedTrigger` runs on Airflow's
shared-stream **ack mode** (``airflow.triggers.shared_stream``, Airflow >= 3.3): the triggerer
drives :class:`CompletionProducer`, which reads completions from the connection's shared
waiter feed and hands them out one by one; the trigger turns each into a ``TriggerEvent``; the
triggerer's supervisor stores that event as an asset event and confirms it back; only then does
the triggerer call :meth:`CompletionProducer.advance`, which stores the feed position in the
asset's ``asset_state_store``. So:

* an event that Airflow did not store is never covered by the stored position: a triggerer killed
  at any moment, or an API server that fails the write, re-delivers rather than loses;
* what can come twice is only an event Airflow stored whose confirmation had not yet become a
  stored position (one triggerer loop, about a second) when the triggerer died.

A burst is handed out at most :data:`MAX_OUTSTANDING` completions ahead of the confirmations,
so the triggerer's per-trigger queue never overflows, however large the backlog after downtime.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome, SharedStreamProducer
from dbos_orchestrator.waiting.feed import PAGE_SIZE, FeedState, now_ms

from dbos_airflow.exceptions import DBOSDeliveryError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

    from dbos_orchestrator.waiting.feed import Completion, CompletionFeed, CompletionFilter
    from dbos_orchestrator.waiting.waiter import DBOSWaiter

__all__ = [
    "MAX_OUTSTANDING",
    "CompletionProducer",
    "Watermark",
    "acked_when_consumer_moves_on",
]

MAX_OUTSTANDING = PAGE_SIZE  # completions handed out but not yet confirmed stored (Airflow's queue holds 1,024)


class Watermark:
    """Where one watcher's feed stands, kept in the ``asset_state_store`` of its assets.

    :param key: the store key (the watcher's identity: one per filter set).
    :param store: the trigger's ``asset_state_store`` (Airflow >= 3.3), or None outside an
        asset watcher: then the position lives in memory and every start replays
        ``lookback_without_state_store`` seconds.
    :param start_lookback: on the very first start (nothing stored), start this many seconds back.
    """

    def __init__(
        self,
        *,
        key: str,
        store: Any,
        start_lookback: float,
        lookback_without_state_store: float,
        log: Any,
    ) -> None:
        self.key = key
        self.store = store
        self.start_lookback = start_lookback
        self.lookback_without_state_store = lookback_without_state_store
        self.log = log

    def _accessors(self) -> list[Any]:
        """One accessor per watched asset, else none."""
        if self.store is None:
            return []
        found = [*getattr(self.store, "_by_name", {}).values(), *getattr(self.store, "_by_uri", {}).values()]
        return found or [self.store]

    async def load(self) -> FeedState:
        """Where to start: the stored position, else now (minus the configured lookback)."""
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
        states = [FeedState.from_json(await self._retrying("read", a.aget, self.key)) for a in accessors]
        stored = [s for s in states if s is not None]
        if len(stored) == len(states):
            # Several assets on one watcher: start at the furthest-behind one (duplicates, not losses).
            state = min(stored, key=lambda s: s.position)
            self.log.info("Resuming DBOS completions after %s (%s)", state.position, self.key)
            return state
        start = now_ms() - int(self.start_lookback * 1000)
        if stored:
            start = min(start, *(s.position[0] for s in stored))
        self.log.info("No DBOS completion watermark stored under %s: starting at %s", self.key, start)
        state = FeedState.starting_at(start)
        # Stored before anything is delivered: a restart resumes here, not at its own "now".
        for accessor in accessors:
            await self._retrying("store", accessor.aset, self.key, state.to_json())
        return state

    async def save(self, state: FeedState) -> None:
        """Store the position (after Airflow stored the events it covers); retried until it is stored."""
        value = state.to_json()
        for accessor in self._accessors():
            await self._retrying("store", accessor.aset, self.key, value)

    async def _retrying(self, what: str, call: Any, *args: Any) -> Any:
        """``await call(*args)``, retried with backoff: a watcher waits for Airflow's API instead of dying."""
        delay = 1.0
        while True:
            try:
                return await call(*args)
            except Exception:  # noqa: BLE001 - logged; the watcher cannot start without its watermark
                self.log.warning(
                    "Could not %s the DBOS completion watermark; retrying in %.0fs", what, delay, exc_info=True
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


class CompletionProducer(SharedStreamProducer):
    """The ack-mode producer of one watcher: its feed on the shared waiter, and its watermark.

    ``open_stream`` yields ``(completion, state)`` pairs; ``state`` is the feed position after
    the completion's page on the page's last completion, None on the others, so the stored
    position only ever covers whole pages whose every event Airflow confirmed.
    """

    def __init__(
        self,
        *,
        watermark: Watermark,
        waiter: Callable[[], Awaitable[DBOSWaiter]],
        completion_filter: CompletionFilter,
        max_outstanding: int = MAX_OUTSTANDING,
    ) -> None:
        self.watermark = watermark
        self.get_waiter = waiter
        self.completion_filter = completion_filter
        self.max_outstanding = max_outstanding
        self.outstanding = 0
        self._room = asyncio.Event()
        self._waiter: DBOSWaiter | None = None
        self._feed: CompletionFeed | None = None

    async def open_stream(self) -> AsyncIterator[tuple[Completion, FeedState | None]]:
        state = await self.watermark.load()
        self._waiter = await self.get_waiter()
        self._feed = feed = self._waiter.completion_feed(self.completion_filter, state)
        while True:
            page = await feed.next_page()
            if page is None:  # only with a timeout, which is not given
                continue
            last = len(page.completions) - 1
            for i, completion in enumerate(page.completions):
                while self.outstanding >= self.max_outstanding:
                    self._room.clear()
                    await self._room.wait()
                self.outstanding += 1
                yield completion, (page.state if i == last else None)

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        """Store the position after the last whole page of ``batch`` whose events Airflow stored."""
        covered: FeedState | None = None
        refused: AdvanceItem | None = None
        for item in batch:
            if not item.outcome.is_clean:
                refused = item
                break
            if item.broker_payload is not None:
                covered = item.broker_payload
        self.outstanding = max(0, self.outstanding - len(batch))
        self._room.set()
        if covered is not None:
            await self.watermark.save(covered)
        if refused is not None:
            # Raising ends this stream; the trigger restarts from the stored position.
            raise DBOSDeliveryError(
                f"Airflow did not confirm storing the asset event of a DBOS completion ({refused.outcome}); "
                "it will be delivered again from the stored position"
            )

    async def aclose(self) -> None:
        if self._waiter is not None and self._feed is not None:
            self._waiter.close_feed(self._feed)
        self._feed = None


async def acked_when_consumer_moves_on(producer: CompletionProducer) -> AsyncIterator[Completion]:
    """The producer's completions outside a triggerer's shared stream (``run()``, tests).

    A completion counts as delivered once the consumer asks for the next one, as in ack mode
    when the event needs no storing.
    """
    try:
        async for completion, state in producer.open_stream():
            yield completion
            await producer.advance([AdvanceItem(state, AdvanceOutcome(acked=1, failed=0))])
    finally:
        await producer.aclose()
