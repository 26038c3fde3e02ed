"""DBOSWorkflowCompletedTrigger, run directly (no triggerer): payloads, filters, watermark, paging.

Real worker and Postgres. The trigger's ``asset_state_store`` is a small in-memory stand-in with
Airflow's ``aget``/``aset`` interface (the real one is exercised in test_event_stack.py).
Completions with exact counts are made by enqueuing on a queue no worker polls and cancelling:
a cancel stamps ``completed_at`` like any other end, and a never-run workflow may have any name,
so a unique name isolates each test from the others' workflows.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from conftest import unique
from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.waiting.feed import LATE_COMMIT_MS, FeedState

from dbos_airflow.hooks.dbos import DBOSHook
from dbos_airflow.triggers.completed import DBOSWorkflowCompletedTrigger

UNPOLLED = "q_completed_nobody"


class MemoryStateStore:
    """Airflow's AssetStateStoreAccessors interface (single asset), in memory, JSON round-tripped."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))
        self.writes += 1


class Run:
    """A trigger's ``run()`` consumed in the background, as the triggerer would."""

    def __init__(self, trigger: DBOSWorkflowCompletedTrigger) -> None:
        self.trigger = trigger
        self.events: list[dict[str, Any]] = []
        self._gen = trigger.run()
        self._task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        async for event in self._gen:
            self.events.append(event.payload)

    async def until(self, count: int, limit: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + limit
        while len(self.events) < count:
            if self._task.done():
                self._task.result()
            assert time.monotonic() < deadline, f"only {len(self.events)} of {count} events after {limit}s"
            await asyncio.sleep(0.05)
        return self.events

    async def stop(self) -> None:
        """Cancel the run, as a triggerer shutting down does."""
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


def trigger(store: MemoryStateStore | None = None, **kwargs: Any) -> DBOSWorkflowCompletedTrigger:
    t = DBOSWorkflowCompletedTrigger(**kwargs)
    t.asset_state_store = store  # type: ignore[assignment]
    return t


def ended_by_cancel(hook: DBOSHook, name: str, count: int) -> list[str]:
    """``count`` workflows named ``name`` that end CANCELLED now (one UPDATE)."""
    ids = hook.enqueue_many({"workflow_name": name, "queue_name": UNPOLLED}, [[] for _ in range(count)])
    hook.get_client().cancel_workflows(ids)
    return ids


@pytest.fixture
def hook(dbos_conn: str) -> Any:
    h = DBOSHook(dbos_conn)
    yield h
    h.close()


def test_serialize_round_trips_and_validates() -> None:
    t = DBOSWorkflowCompletedTrigger(workflow_name="a", queue_name=["q2", "q1"], statuses=["ERROR", "CANCELLED"])
    classpath, kwargs = t.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs
    again = DBOSWorkflowCompletedTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs) and again.state_key == t.state_key
    assert kwargs["queue_name"] == ["q1", "q2"] and kwargs["statuses"] == ["CANCELLED", "ERROR"]
    assert DBOSWorkflowCompletedTrigger(workflow_name="b").state_key != t.state_key  # one watermark per filter set
    with pytest.raises(DBOSOptionsError, match="not terminal"):
        DBOSWorkflowCompletedTrigger(statuses=["PENDING"])
    with pytest.raises(ValueError, match="unknown DBOS workflow status"):
        DBOSWorkflowCompletedTrigger(statuses=["DONE"])


async def test_payloads_and_filters(dbos_conn: str, hook: DBOSHook, client: Any) -> None:
    """Real runs: name, status and queue filters; output and error only when asked, JSON only."""
    store = MemoryStateStore()
    errors = Run(trigger(store, workflow_name="wf_fail", statuses=["ERROR"], include_output=True))
    doubles = Run(trigger(MemoryStateStore(), workflow_name=["wf_double"], queue_name="q", include_output=True))
    plain = Run(trigger(MemoryStateStore(), workflow_name="wf_double", queue_name="q_other"))
    await asyncio.sleep(0.5)
    failing = (
        await client.enqueue_async({"queue_name": "q", "workflow_name": "wf_fail"}, "refund declined")
    ).workflow_id
    on_q = (await client.enqueue_async({"queue_name": "q", "workflow_name": "wf_double"}, 21)).workflow_id
    on_other = (await client.enqueue_async({"queue_name": "q_other", "workflow_name": "wf_double"}, 5)).workflow_id
    await client.enqueue_async({"queue_name": "q", "workflow_name": "wf_noop"})  # matches no filter
    try:
        [err] = [e for e in await errors.until(1) if e["workflow_id"] == failing]
        assert err["status"] == "ERROR" and err["name"] == "wf_fail" and err["queue_name"] == "q"
        assert err["error"].endswith("refund declined") and "output" not in err
        assert err["completion_key"] == f"{failing}@{err['completed_at_ms']}"
        assert err["created_at"] <= err["completed_at"] and err["completed_at"].endswith("+00:00")
        got = await doubles.until(1)
        assert [(e["workflow_id"], e["output"]) for e in got if e["workflow_id"] in (on_q, on_other)] == [(on_q, 42)]
        await plain.until(1)
        mine = [e for e in plain.events if e["workflow_id"] in (on_q, on_other)]
        assert [e["workflow_id"] for e in mine] == [on_other] and "output" not in mine[0] and "error" not in mine[0]
        await asyncio.sleep(1.0)
        assert all(e["status"] == "ERROR" and e["name"] == "wf_fail" for e in errors.events)
        json.dumps([errors.events, doubles.events, plain.events])  # plain JSON
    finally:
        for run in (errors, doubles, plain):
            await run.stop()


async def test_pickled_output_is_not_decoded(dbos_conn: str, hook: DBOSHook, client: Any) -> None:
    from dbos import WorkflowSerializationFormat

    run = Run(trigger(MemoryStateStore(), workflow_name="wf_double", queue_name="q_other", include_output=True))
    await asyncio.sleep(0.5)
    wid = (
        await client.enqueue_async(
            {
                "queue_name": "q_other",
                "workflow_name": "wf_double",
                "serialization_type": WorkflowSerializationFormat.NATIVE,
            },
            4,
        )
    ).workflow_id
    try:
        await run.until(1)
        [event] = [e for e in run.events if e["workflow_id"] == wid]
        assert event["output"] is None and "allow_pickle" in event["output_not_decoded"]
    finally:
        await run.stop()


async def test_burst_of_1000_in_order_paged_then_watermark_stored(dbos_conn: str, hook: DBOSHook) -> None:
    name = unique("burst")
    store = MemoryStateStore()
    run = Run(trigger(store, workflow_name=name))
    await asyncio.sleep(0.5)
    ids = await asyncio.to_thread(ended_by_cancel, hook, name, 1000)
    try:
        events = await run.until(1000)
        await asyncio.sleep(1.0)
        assert len(run.events) == 1000 and {e["workflow_id"] for e in events} == set(ids)
        positions = [(e["completed_at_ms"], e["workflow_id"]) for e in events]
        assert positions == sorted(positions)  # in (completed_at, workflow id) order
        await asyncio.sleep(0.5)
        state = FeedState.from_json(store.data[run.trigger.state_key])
        assert state is not None and state.position == positions[-1]
        assert 1 <= store.writes <= 10  # per page, not per event
    finally:
        await run.stop()


async def test_restart_delivers_what_ended_while_stopped_and_nothing_twice(dbos_conn: str, hook: DBOSHook) -> None:
    name = unique("restart")
    store = MemoryStateStore()
    first = Run(trigger(store, workflow_name=name))
    await asyncio.sleep(0.5)
    before = await asyncio.to_thread(ended_by_cancel, hook, name, 30)
    await first.until(30)
    await asyncio.sleep(0.6)  # acknowledged: the watermark covers all 30
    await first.stop()
    during = await asyncio.to_thread(ended_by_cancel, hook, name, 40)  # no trigger runs
    second = Run(trigger(store, workflow_name=name))
    try:
        await second.until(40)
        after = await asyncio.to_thread(ended_by_cancel, hook, name, 5)
        await second.until(45)
        await asyncio.sleep(1.0)
        delivered = [e["workflow_id"] for e in first.events + second.events]
        assert sorted(delivered) == sorted(before + during + after)  # none lost, none twice
    finally:
        await second.stop()


async def test_unacknowledged_events_come_again_never_lost(dbos_conn: str, hook: DBOSHook) -> None:
    """Stopped while holding its last event (not yet acknowledged): the next start re-delivers
    the page (duplicates, not losses)."""
    name = unique("unacked")
    store = MemoryStateStore()
    first = trigger(store, workflow_name=name).run()
    held = asyncio.ensure_future(first.__anext__())
    await asyncio.sleep(0.5)
    ids = await asyncio.to_thread(ended_by_cancel, hook, name, 10)
    got = [(await held).payload]
    got += [(await first.__anext__()).payload for _ in range(9)]  # the 10th is never acknowledged
    await first.aclose()
    assert sorted(e["workflow_id"] for e in got) == sorted(ids)
    assert store.writes == 1  # only the starting point, stored before anything was delivered
    second = Run(trigger(store, workflow_name=name))
    try:
        again = await second.until(10)
        assert sorted(e["workflow_id"] for e in again) == sorted(ids)
    finally:
        await second.stop()


async def test_ack_mode_stores_the_position_only_after_airflow_confirms(dbos_conn: str, hook: DBOSHook) -> None:
    """Airflow's own SharedStreamManager, driven as the triggerer's runner drives it (the test
    plays the runner and its supervisor): events handed out but not confirmed stored move no
    position; confirming them does."""
    from airflow.triggers.shared_stream import SharedStreamManager

    name = unique("ackmode")
    store = MemoryStateStore()
    watcher = trigger(store, workflow_name=name)
    manager = SharedStreamManager()
    key = watcher.shared_stream_key()
    events = watcher.filter_shared_stream(manager.subscribe(trigger_id=1, trigger=watcher, key=key))
    pending = asyncio.ensure_future(events.__anext__())
    await asyncio.sleep(0.5)
    ids = await asyncio.to_thread(ended_by_cancel, hook, name, 5)
    seqs, got = [], []
    try:
        for i in range(5):
            event = await pending if i == 0 else await events.__anext__()
            got.append(event.payload["workflow_id"])
            seqs.append(manager.bind_pending_event(trigger_id=1, key=key))  # as run_trigger does
        pending = asyncio.ensure_future(events.__anext__())  # moved past the 5th
        assert sorted(got) == sorted(ids) and None not in seqs  # every event bound to its raw completion
        await asyncio.sleep(1.0)
        assert store.writes == 1, "the position moved before Airflow confirmed storing the events"
        manager.confirm_persisted(seqs[:3])  # a page is covered only once all of it is stored
        await asyncio.sleep(0.5)
        assert store.writes == 1
        manager.confirm_persisted(seqs[3:])
        for _ in range(50):
            if store.writes == 2:
                break
            await asyncio.sleep(0.1)
        state = FeedState.from_json(store.data[watcher.state_key])
        assert store.writes == 2 and state is not None and set(ids) <= set(state.recent)
    finally:
        pending.cancel()
        await manager.unsubscribe(1, key)
        await watcher.cleanup()


async def test_late_commit_within_window_is_delivered_once(dbos_conn: str, hook: DBOSHook) -> None:
    """A completion stamped before the watermark but visible later (a slow commit) is not lost."""
    import sqlalchemy as sa
    from dbos._schemas.system_database import SystemSchema

    name = unique("late")
    store = MemoryStateStore()
    run = Run(trigger(store, workflow_name=name, start_lookback=10))  # floor before the stamp
    await asyncio.sleep(0.5)
    [first] = await asyncio.to_thread(ended_by_cancel, hook, name, 1)
    await run.until(1)
    # Stamp a second completion 2 s before the first one: as if its transaction committed late.
    [late] = await asyncio.to_thread(hook.enqueue_many, {"workflow_name": name, "queue_name": UNPOLLED}, [[]])
    ws = SystemSchema.workflow_status
    engine = hook.get_client().system_database_engine
    with engine.begin() as conn:  # the test plays the DBOS application here
        stamp = conn.execute(sa.select(ws.c.completed_at).where(ws.c.workflow_uuid == first)).scalar_one()
        conn.execute(
            ws.update().where(ws.c.workflow_uuid == late).values(status="CANCELLED", completed_at=stamp - 2000)
        )
    try:
        await run.until(2)
        await asyncio.sleep(1.0)
        assert [e["workflow_id"] for e in run.events] == [first, late]
        assert LATE_COMMIT_MS > 2000
    finally:
        await run.stop()


async def test_without_asset_state_store_replays_the_lookback(dbos_conn: str, hook: DBOSHook) -> None:
    """Airflow 3.2: nothing persisted; a start replays ``lookback_without_state_store`` seconds."""
    name = unique("nostore")
    ids = await asyncio.to_thread(ended_by_cancel, hook, name, 3)
    run = Run(trigger(None, workflow_name=name, lookback_without_state_store=600))
    try:
        assert sorted(e["workflow_id"] for e in await run.until(3)) == sorted(ids)
    finally:
        await run.stop()
    fresh = Run(trigger(MemoryStateStore(), workflow_name=name))  # with a store, a first start begins now
    try:
        await asyncio.sleep(1.5)
        assert fresh.events == []
    finally:
        await fresh.stop()


async def test_50_watchers_one_statement_per_feed_tick(dbos_conn: str, hook: DBOSHook) -> None:
    from dbos_orchestrator.waiting.waiter import FEED_TICK_SECONDS

    names = [unique("many") for _ in range(50)]
    runs = [Run(trigger(MemoryStateStore(), workflow_name=n)) for n in names]
    waiter = await hook.get_waiter_async()
    try:
        await asyncio.sleep(1.0)
        assert waiter.feeds >= 50
        probes0, started = waiter.feed_probes, time.monotonic()
        await asyncio.sleep(3.0)
        rate = (waiter.feed_probes - probes0) / (time.monotonic() - started)
        assert rate <= 1 / FEED_TICK_SECONDS + 1, f"{rate:.1f} feed statements/s for 50 watchers"
        await asyncio.to_thread(ended_by_cancel, hook, names[7], 2)
        await runs[7].until(2)
        await asyncio.sleep(0.5)
        assert [len(r.events) for i, r in enumerate(runs) if i != 7] == [0] * 49
    finally:
        for r in runs:
            await r.stop()


class FlakyStateStore(MemoryStateStore):
    """Airflow's API server unreachable for a while: the first ``failures`` writes after the start fail."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def aset(self, key: str, value: Any) -> None:
        if self.writes >= 1 and self.failures > 0:  # the starting point is stored; later writes fail
            self.failures -= 1
            raise ConnectionError("api-server unreachable")
        await super().aset(key, value)


async def test_a_failed_watermark_write_is_retried_and_delivery_goes_on(dbos_conn: str, hook: DBOSHook) -> None:
    name = unique("flaky")
    store = FlakyStateStore(failures=2)
    run = Run(trigger(store, workflow_name=name))
    await asyncio.sleep(0.5)
    first = await asyncio.to_thread(ended_by_cancel, hook, name, 3)
    await run.until(3)
    second = await asyncio.to_thread(ended_by_cancel, hook, name, 3)
    try:
        await run.until(6)
        for _ in range(80):
            state = FeedState.from_json(store.data.get(run.trigger.state_key))
            if state is not None and set(state.recent) >= set(first + second):
                break
            await asyncio.sleep(0.1)
        assert store.failures == 0 and state is not None and set(state.recent) >= set(first + second)
        assert sorted(e["workflow_id"] for e in run.events) == sorted(first + second)
    finally:
        await run.stop()
