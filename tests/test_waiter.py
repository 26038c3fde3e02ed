"""The shared waiter, structurally: one connection and one statement per tick, however many waits.

Real worker and Postgres. Counts come from Postgres (``pg_stat_activity``: which backends this
process holds) and from the waiter's own engine (statements sent), never from timings.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psutil
import pytest
import sqlalchemy as sa
from conftest import unique
from dbos_orchestrator.status import DBOSWorkflowStatus

from dbos_airflow.hooks.dbos import DBOSHook

UNPOLLED = "q_waiter_nobody"  # no worker polls it: its workflows stay ENQUEUED until cancelled
WAITS = 200


def _backend_pids(system_database_url: str) -> set[int]:
    """Postgres backends (pids) connected to the test system database from this process."""
    url = sa.make_url(system_database_url)
    ports = [
        c.laddr.port for c in psutil.Process().net_connections("tcp") if c.raddr and c.raddr.port == (url.port or 5432)
    ]
    engine = sa.create_engine(url.set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = :db AND client_port = ANY(:ports) "
                    "AND pid <> pg_backend_pid()"
                ),
                {"db": url.database, "ports": ports},
            )
            return {int(r[0]) for r in rows}
    finally:
        engine.dispose()


class _Statements:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine, self.count = engine, 0
        sa.event.listen(engine, "before_cursor_execute", self._on)

    def _on(self, *_: Any) -> None:
        self.count += 1

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._on)


@pytest.fixture
def hook(dbos_conn: str) -> Any:
    h = DBOSHook(dbos_conn)
    yield h
    h.close()


async def _until(predicate: Any, what: str, limit: float = 30) -> None:
    for _ in range(int(limit / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def test_200_waits_share_one_connection_and_one_statement_per_tick(
    dbos_conn: str, hook: DBOSHook, system_database_url: str
) -> None:
    prefix = unique("waits")
    ids = await asyncio.to_thread(
        hook.enqueue_many, {"workflow_name": "wf_double", "queue_name": UNPOLLED}, [[i] for i in range(WAITS)]
    )
    waiter = await DBOSHook(dbos_conn).get_waiter_async()
    statements = _Statements(waiter.client.system_database_engine)
    before = await asyncio.to_thread(_backend_pids, system_database_url)
    try:
        tasks = [asyncio.create_task(waiter.observe(wid)) for wid in ids]
        tasks.append(asyncio.create_task(waiter.observe(f"{prefix}-missing")))
        await _until(lambda: tasks[-1].done(), "the wait for a missing workflow returned")
        assert tasks[-1].result().status is None  # not found
        await _until(lambda: waiter.pending == WAITS, f"{WAITS} waits registered")

        probes0, statements0 = waiter.probes, statements.count
        await _until(lambda: waiter.probes >= probes0 + 10, "10 more probes")
        during = await asyncio.to_thread(_backend_pids, system_database_url)
        probes, sent = waiter.probes - probes0, statements.count - statements0
        # One statement per probe for all 200 waits (not one per wait: that would be 2,000), all on one
        # backend. The two counters are read while the polling thread runs (a probe counts itself after its
        # statement ran), so each of the window's two ends may split one probe: +-1.
        assert abs(sent - probes) <= 1, f"{sent} statements for {probes} probes of {WAITS} waits"
        assert len(during - before) <= 1, f"the waiter opened backends {during - before} for {WAITS} waits"
        assert not any(t.done() for t in tasks[:-1]), "a wait on an ENQUEUED workflow returned"

        await asyncio.to_thread(hook.get_client().cancel_workflows, ids)
        observations = await asyncio.wait_for(asyncio.gather(*tasks[:-1]), 30)
        assert {o.status for o in observations} == {"CANCELLED"}
        assert len(await asyncio.to_thread(_backend_pids, system_database_url) - before) <= 2
    finally:
        statements.close()


async def test_event_waits_of_one_workflow_resolve_together(dbos_conn: str, client: Any) -> None:
    """Waits on 200 keys and on the completion of one workflow; it publishes one of the keys."""
    waiter = await DBOSHook(dbos_conn).get_waiter_async()
    handle = await client.enqueue_async({"queue_name": "q", "workflow_name": "wf_set_event_later"}, "k7", "v", 1.0)
    wid = handle.workflow_id
    keyed = [asyncio.create_task(waiter.observe(wid, f"k{i}")) for i in range(WAITS)]
    ended = asyncio.create_task(waiter.observe(wid))
    done = await asyncio.wait_for(asyncio.gather(*keyed, ended), 60)
    published = [i for i, obs in enumerate(done[:-1]) if obs.event_present]
    assert published == [7]
    assert {obs.status for obs in done[:-1] if not obs.event_present} == {"SUCCESS"}  # ended without the key
    assert done[-1].status is DBOSWorkflowStatus.SUCCESS and not done[-1].event_present
    assert await client.get_event_async(wid, "k7", 0) == "v"


async def test_waits_ending_together_reach_the_loop_in_one_callback_per_probe(dbos_conn: str, hook: DBOSHook) -> None:
    """200 workflows cancelled at once: the polling thread hands the waiting loop one callback per
    probe that saw some end (not one per wait), and does not ask again about a wait it resolved."""
    ids = await asyncio.to_thread(
        hook.enqueue_many, {"workflow_name": "wf_double", "queue_name": UNPOLLED}, [[i] for i in range(WAITS)]
    )
    waiter = await DBOSHook(dbos_conn).get_waiter_async()
    loop = asyncio.get_running_loop()
    handoffs: list[int] = []
    original = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], list):  # the waiter's batch
            handoffs.append(len(args[0]))
        return original(callback, *args, **kwargs)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        tasks = [asyncio.create_task(waiter.observe(wid)) for wid in ids]
        await _until(lambda: waiter.pending == WAITS, f"{WAITS} waits registered")
        probes0 = waiter.probes
        await asyncio.to_thread(hook.get_client().cancel_workflows, ids)
        observations = await asyncio.wait_for(asyncio.gather(*tasks), 30)
        probes = waiter.probes - probes0
    finally:
        del loop.call_soon_threadsafe
    assert {o.status for o in observations} == {"CANCELLED"}
    assert sum(handoffs) == WAITS, f"{sum(handoffs)} resolutions handed over for {WAITS} waits"
    assert len(handoffs) <= probes, f"{len(handoffs)} loop callbacks for {probes} probes"


async def test_waits_seen_ending_together_resume_oldest_end_first_in_one_loop_callback(hook: DBOSHook) -> None:
    """Workflows that ended between two probes reach the loop in one callback (not 25 waits per callback)
    and in the order they ended (in a burst the loop resumes them one after another: P9)."""
    from dbos_orchestrator.client import DBOSClient
    from dbos_orchestrator.waiting.waiter import DBOSWaiter

    ids = await asyncio.to_thread(
        hook.enqueue_many, {"workflow_name": "wf_double", "queue_name": UNPOLLED}, [[i] for i in range(40)]
    )
    kwargs = {**(await hook.get_settings_async()).client_kwargs(), "use_listen_notify": False}
    waiter = DBOSWaiter(unique("order"), await asyncio.to_thread(DBOSClient, **kwargs), tick=3.0)
    loop = asyncio.get_running_loop()
    callbacks: list[int] = []
    original = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], list):  # the waiter's batch
            callbacks.append(len(args[0]))
        return original(callback, *args, **kwargs)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    resumed: list[str] = []
    tasks = {wid: asyncio.create_task(waiter.observe(wid)) for wid in sorted(ids)}
    for wid, task in tasks.items():
        task.add_done_callback(lambda _, wid=wid: resumed.append(wid))  # type: ignore[misc]
    try:
        await _until(lambda: waiter.pending == len(ids) and waiter.probes >= 1, "the waits registered and probed")
        probes = waiter.probes
        ended = ids[::-1]  # not the order the waits were registered in, nor the ids' order
        for wid in ended:  # one transaction each: status rows updated in this order
            await asyncio.to_thread(hook.get_client().cancel_workflows, [wid])
            await asyncio.sleep(0.003)  # updated_at is in ms: two cancels in one ms would tie (order undefined)
        await asyncio.wait_for(asyncio.gather(*tasks.values()), 30)
    finally:
        del loop.call_soon_threadsafe
        await asyncio.to_thread(waiter.stop)
    if waiter.probes - probes == 1:  # all ended within the 3 s tick: one batch (else the test proves less)
        assert callbacks == [len(ids)]
    assert resumed == [wid for wid in ended if wid in resumed], "not resumed in the order the workflows ended"


async def test_a_waiter_whose_waits_read_nothing_holds_one_connection(hook: DBOSHook) -> None:
    """The polling connection only: the LISTEN check notifies from a second connection, which is closed
    afterwards instead of kept in the pool (bench P9 counted the triggerer's 1,000 workflow waits on 2)."""
    from dbos_orchestrator.client import DBOSClient
    from dbos_orchestrator.waiting.waiter import DBOSWaiter

    kwargs = {**(await hook.get_settings_async()).client_kwargs(), "use_listen_notify": False}
    client = await asyncio.to_thread(DBOSClient, **kwargs)
    used: dict[int, Any] = {}  # the driver connections the waiter checked out of its pool
    sa.event.listen(
        client.system_database_engine, "checkout", lambda dbapi_conn, *_: used.setdefault(id(dbapi_conn), dbapi_conn)
    )
    waiter = DBOSWaiter(unique("one-connection"), client)
    try:
        observation = await waiter.observe(unique("missing"), deadline=time.time() + 30)
        assert observation.status is None  # a probe ran, after the LISTEN check
        assert waiter.listening, "the waiter does not LISTEN on this server"
        assert len(used) == 2, "the polling connection and the LISTEN check's"
        assert sum(not c.closed for c in used.values()) == 1, f"the waiter kept the LISTEN check's: {used}"
    finally:
        await asyncio.to_thread(waiter.stop)


async def test_a_watched_event_behind_another_notify_of_its_packet_ends_the_pause(
    hook: DBOSHook, system_database_url: str
) -> None:
    """DBOS flushes its NOTIFYs in batches, so one packet may hold a NOTIFY nobody here waits for and then
    an awaited one: the pause ends at once (psycopg yields the whole packet; leaving its generator after
    the first dropped the rest, and the awaited event waited for the next tick)."""
    from dbos_orchestrator.client import DBOSClient
    from dbos_orchestrator.waiting.waiter import EVENTS_CHANNEL, DBOSWaiter

    (wid,) = await asyncio.to_thread(hook.enqueue_many, {"workflow_name": "wf_double", "queue_name": UNPOLLED}, [[1]])
    kwargs = {**(await hook.get_settings_async()).client_kwargs(), "use_listen_notify": False}
    waiter = DBOSWaiter(unique("packet"), await asyncio.to_thread(DBOSClient, **kwargs), tick=5.0)
    engine = sa.create_engine(system_database_url)
    wait = asyncio.create_task(waiter.observe(wid, "k"))
    try:
        await _until(lambda: waiter.pending == 1 and waiter.probes >= 1, "the wait registered and probed")
        assert waiter.listening, "the waiter does not LISTEN on this server"
        probes = waiter.probes
        await _until(lambda: waiter.probes > probes, "a probe (the 5 s pause starts after it)", limit=10)
        probes = waiter.probes

        def both_in_one_commit() -> None:
            with engine.begin() as conn:  # delivered together, the unwatched one first
                conn.execute(
                    sa.text("SELECT pg_notify(:c, 'nobody-here::k'), pg_notify(:c, :p)"),
                    {"c": EVENTS_CHANNEL, "p": f"{wid}::k"},
                )

        await asyncio.to_thread(both_in_one_commit)
        # Woken by the packet's second NOTIFY: a probe well before the 5 s tick would have come.
        await _until(lambda: waiter.probes > probes, "a probe woken by the awaited NOTIFY", limit=2.5)
        assert not wait.done(), "the event does not exist: the wait goes on"
    finally:
        wait.cancel()
        await asyncio.to_thread(waiter.stop)
        engine.dispose()
        await asyncio.to_thread(hook.get_client().cancel_workflows, [wid])


async def test_the_probe_returns_only_ended_and_missing_workflows(dbos_conn: str, hook: DBOSHook, client: Any) -> None:
    """With 200 waits on ENQUEUED workflows a tick decodes no row for them (P11: 1,000 rows a tick
    took the polling thread's GIL time from the loop); one that ended and one that does not exist
    come back, and the progress lines still know the running ones' status (read every 10 s)."""
    from dbos_orchestrator.waiting.probe import wait_probe_statement

    ids = await asyncio.to_thread(
        hook.enqueue_many, {"workflow_name": "wf_double", "queue_name": UNPOLLED}, [[i] for i in range(WAITS)]
    )
    ended = (await client.enqueue_async({"queue_name": "q", "workflow_name": "wf_double"}, 21)).workflow_id
    assert await (await client.retrieve_workflow_async(ended)).get_result() == 42
    missing = unique("missing")
    waiter = await DBOSHook(dbos_conn).get_waiter_async()
    statement = wait_probe_statement([*ids, ended, missing], [], postgres=True, ended_only=True)
    with waiter.client.system_database_engine.connect() as conn:
        rows = conn.execute(statement).all()
    assert sorted((r[0], r[1]) for r in rows) == sorted([(ended, "SUCCESS"), (missing, None)])

    tasks = [asyncio.create_task(waiter.observe(w)) for w in [*ids, ended, missing]]
    try:
        observations = await asyncio.wait_for(asyncio.gather(*tasks[-2:]), 30)
        assert [o.status for o in observations] == [DBOSWorkflowStatus.SUCCESS, None]
        await _until(lambda: waiter.progress(ids[0])[0] is not None, "the running waits' statuses read")
        assert {waiter.progress(w)[0] for w in ids} == {DBOSWorkflowStatus.ENQUEUED}
        assert not any(t.done() for t in tasks[:-2]), "a wait on an ENQUEUED workflow returned"
        await asyncio.to_thread(hook.get_client().cancel_workflows, ids)
        cancelled = await asyncio.wait_for(asyncio.gather(*tasks[:-2]), 30)
        assert {o.status for o in cancelled} == {DBOSWorkflowStatus.CANCELLED}
    finally:
        for t in tasks:
            t.cancel()
