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
import hashlib
import json
from typing import TYPE_CHECKING, Any

from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome, SharedStreamProducer

from dbos_airflow.exceptions import DBOSAirflowError
from dbos_airflow.waiting.feed import PAGE_SIZE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from dbos_airflow.triggers.completed import DBOSWorkflowCompletedTrigger
    from dbos_airflow.waiting.feed import Completion, CompletionFeed, FeedState
    from dbos_airflow.waiting.waiter import DBOSWaiter

__all__ = ["MAX_OUTSTANDING", "CompletionProducer", "DBOSDeliveryError", "acked_when_consumer_moves_on"]

MAX_OUTSTANDING = PAGE_SIZE  # completions handed out but not yet confirmed stored (Airflow's queue holds 1,024)


class DBOSDeliveryError(DBOSAirflowError):
    """Airflow did not confirm that it stored an event: the position stays before it (re-delivered)."""


class CompletionProducer(SharedStreamProducer):
    """The ack-mode producer of one watcher: its feed on the shared waiter, and its watermark.

    ``open_stream`` yields ``(completion, state)`` pairs; ``state`` is the feed position after
    the completion's page on the page's last completion, None on the others, so the stored
    position only ever covers whole pages whose every event Airflow confirmed.
    """

    def __init__(self, trigger: DBOSWorkflowCompletedTrigger, *, max_outstanding: int = MAX_OUTSTANDING) -> None:
        self.trigger = trigger
        self.max_outstanding = max_outstanding
        self.outstanding = 0
        self._room = asyncio.Event()
        self._waiter: DBOSWaiter | None = None
        self._feed: CompletionFeed | None = None

    async def open_stream(self) -> AsyncIterator[tuple[Completion, FeedState | None]]:
        state = await self.trigger.load_state()
        self._waiter = await self.trigger.hook.get_waiter_async()
        self._feed = feed = self._waiter.completion_feed(self.trigger.completion_filter(), state)
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
            await self.trigger.store_state(covered)
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


def stream_key(kwargs: dict[str, Any]) -> tuple[str, str]:
    """One shared-stream group per watcher (its serialized kwargs): each has its own position."""
    return ("dbos_airflow.completed", hashlib.sha256(json.dumps(kwargs, sort_keys=True).encode()).hexdigest()[:16])
