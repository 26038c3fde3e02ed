"""A pending wait of the shared waiter (dbos_orchestrator/waiting/pending.py): its deadline, a result the
polling thread already resolved, and leaving its owner's set either way."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from dbos_orchestrator.exceptions import DBOSWaitTimeoutError
from dbos_orchestrator.waiting.pending import PendingWait


class _Wait(PendingWait[str]):
    def timeout_message(self) -> str:
        return "timed out waiting for the test"


def test_the_deadline_times_out_and_the_wait_leaves_its_set() -> None:
    async def run() -> set[object]:
        wait, lock = _Wait(), threading.Lock()
        waits: set[object] = {wait}
        with pytest.raises(DBOSWaitTimeoutError, match="waiting for the test"):
            await wait.until(time.time() + 0.05, waits, lock)
        return waits

    assert asyncio.run(run()) == set()


def test_a_resolved_wait_gets_its_result_after_its_deadline() -> None:
    """The polling thread set ``resolved`` and queued the result: the deadline does not take it away."""

    async def run() -> str:
        wait, waits = _Wait(), set[object]()
        wait.resolved = True
        wait.loop.call_later(0.1, wait.future.set_result, "seen")
        result = await wait.until(time.time(), waits, threading.Lock())
        assert not waits
        return result

    assert asyncio.run(run()) == "seen"
