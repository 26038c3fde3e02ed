"""When a deferrable DBOS task defers and when its trigger may fire (dbos_airflow/contract/deferral.py;
docs/architecture.md, "Deferring"). The rules under a real scheduler: tests/stack/test_deferral_race.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from dbos_airflow.contract.deferral import (
    HOLD_EVENT_SECONDS,
    batch_ends_before_the_hold,
    check_in_worker,
    hold_until,
    not_before_after_deferral,
)


def test_check_in_worker_returns_the_first_answer() -> None:
    answers = iter([None, None, "SUCCESS", "never read"])
    calls: list[int] = []

    def check() -> str | None:
        calls.append(1)
        return next(answers)

    assert check_in_worker(check, seconds=30) == "SUCCESS"
    assert len(calls) == 3


def test_check_in_worker_checks_once_at_least_and_gives_up_after_its_seconds() -> None:
    calls: list[float] = []
    assert check_in_worker(lambda: calls.append(time.monotonic()), seconds=0) is None
    assert len(calls) == 1
    calls.clear()
    started = time.monotonic()
    assert check_in_worker(lambda: calls.append(time.monotonic()), seconds=0.5) is None
    assert time.monotonic() - started >= 0.5
    assert 2 <= len(calls) <= 6  # 0.1 s, then doubling: a handful of reads, not a busy loop


def test_check_in_worker_lets_the_check_s_error_through() -> None:
    def failed() -> None:
        raise RuntimeError("workflow ended ERROR")

    with pytest.raises(RuntimeError, match="ended ERROR"):
        check_in_worker(failed, seconds=30)


def test_a_batch_is_waited_for_in_the_worker_only_when_it_ends_before_the_hold() -> None:
    assert batch_ends_before_the_hold(10, 1.0)  # 10 s to go
    assert batch_ends_before_the_hold(int(HOLD_EVENT_SECONDS), 1.0)
    assert not batch_ends_before_the_hold(int(HOLD_EVENT_SECONDS) + 1, 1.0)
    assert not batch_ends_before_the_hold(1, 0.0)  # nothing ended yet: no rate to trust


def test_a_trigger_holds_its_event_until_not_before() -> None:
    assert abs(not_before_after_deferral() - (time.time() + HOLD_EVENT_SECONDS)) < 1

    async def timed(not_before: float | None) -> float:
        started = time.monotonic()
        await hold_until(not_before)
        return time.monotonic() - started

    assert asyncio.run(timed(None)) < 1  # stored by an older version: fires at once (not 15 s later)
    assert asyncio.run(timed(time.time() - 5)) < 1
    assert asyncio.run(timed(time.time() + 0.3)) >= 0.25
