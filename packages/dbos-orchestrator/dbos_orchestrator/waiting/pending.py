"""One pending wait of the shared waiter: a future on its caller's loop, settled by the polling thread.

The workflow waits (:mod:`~dbos_orchestrator.waiting.waiter`), batch waits
(:mod:`~dbos_orchestrator.waiting.batch`) and stream waits (:mod:`~dbos_orchestrator.waiting.streams`)
are kinds of it: each adds what its probe asks about and the sentence of its timeout.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dbos_orchestrator.exceptions import DBOSWaitTimeoutError

if TYPE_CHECKING:
    import threading

__all__ = ["PendingWait"]

T = TypeVar("T")


class PendingWait(Generic[T]):
    """A future on the running loop; ``resolved`` is set by the polling thread once it has the answer
    (its probe stops asking about the wait, the result is on its way to this loop)."""

    __slots__ = ("loop", "future", "resolved")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[T] = self.loop.create_future()
        self.resolved = False

    def timeout_message(self) -> str:
        """What timed out (the :class:`DBOSWaitTimeoutError`'s message)."""
        raise NotImplementedError

    def expire(self) -> None:
        # A wait the polling thread resolved has its result on the way (a settle callback is
        # queued on this loop): let it arrive rather than time out and wait all over again.
        if not self.future.done() and not self.resolved:
            self.future.set_exception(DBOSWaitTimeoutError(self.timeout_message()))

    async def until(self, deadline: float | None, waits: set[Any], lock: threading.Lock) -> T:
        """The result, or :class:`DBOSWaitTimeoutError` at ``deadline`` (wall clock, ``time.time()``);
        then the wait leaves ``waits`` (its owner's pending set, guarded by ``lock``) either way.

        The future is awaited directly and the deadline is a timer on the loop: one loop hop from
        the polling thread's batch to the caller (``wait_for`` + ``shield`` took three).
        """
        timer = None if deadline is None else self.loop.call_later(max(0.0, deadline - time.time()), self.expire)
        try:
            return await self.future
        finally:
            if timer is not None:
                timer.cancel()
            with lock:
                waits.discard(self)
