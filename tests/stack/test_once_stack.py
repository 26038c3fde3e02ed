"""Exactly-once work downstream of DBOS completion events, under a real Airflow whose triggerer is
killed with SIGKILL in the middle of a burst (docs/events.md, "Exactly-once work downstream").

A real api-server, scheduler, dag-processor and triggerer (dbos_testkit.airflow_stack, LocalExecutor,
Postgres metadata DB), the real DBOS worker and Postgres; DAG: tests/dags/once_stack/dbos_once_dags.py.
The completion watcher delivers at least once: completions Airflow stored in about the last second
before the kill are delivered again after the restart (docs/events.md, "What it stores, and when"),
as a second asset event that may reach another DAG run. Each run enqueues one ``wf_echo`` per
completion and sends one message per completion, both with ``id_from="completion"``. The test
counts, in Airflow's and DBOS' own tables: asset events and their duplicates, downstream workflows
per completion (by the workflow's input, not by its id), messages per completion. It also replays
one completion explicitly as a manual asset event (a duplicate in a run of its own), so the
mechanism is proven even when the kill happened to produce no duplicate.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ROOT
from dbos_orchestrator.client import DBOSClient
from dbos_orchestrator.store.codec import decode_value
from dbos_testkit.airflow_stack import AirflowStack

import stack.test_event_stack as event_stack
from dbos_airflow.hooks.dbos import DBOSHook

ASSET = "dbos_once_burst"
DAG_ID = "dbos_once_downstream"
INBOX = "dbos-once-inbox"  # tests/dags/once_stack/dbos_once_dags.py
PREFIX = f"{DAG_ID}:handle:"
BATCH = 20
BURST = 7 * BATCH


@pytest.fixture(scope="module")
def stack(dbos_conn: str) -> Any:
    s = AirflowStack(
        ROOT / "tests" / "dags" / "once_stack",
        env={"AIRFLOW_CONN_DBOS_DEFAULT": os.environ["AIRFLOW_CONN_DBOS_DEFAULT"]},
        parallelism=8,
    )
    try:
        s.start()
        s.wait_dag(DAG_ID, timeout=180)
        yield s
    finally:
        s.stop()


def keys_of(engine: sa.Engine) -> list[str]:
    return [extra["payload"]["completion_key"] for extra, _ in event_stack.asset_events(engine, ASSET)]


def downstream_runs(stack: AirflowStack) -> list[dict[str, Any]]:
    return list(stack.api("GET", f"/dags/{DAG_ID}/dagRuns", params={"limit": 1000})["dag_runs"])


def runs_per_key(engine: sa.Engine) -> Counter[str]:
    """How many distinct DAG runs consumed an asset event of each completion."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT e.extra, r.dag_run_id FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                "JOIN dagrun_asset_event r ON r.event_id = e.id WHERE a.name = :name"
            ),
            {"name": ASSET},
        ).all()
    seen = {(extra["payload"]["completion_key"], run) for extra, run in rows}
    return Counter(key for key, _ in seen)


def dbos_counts(hook: DBOSHook) -> tuple[Counter[str], Counter[str], list[str]]:
    """Downstream wf_echo workflows per completion key (by their input), messages to the inbox per
    message (the completion key), and the downstream workflow ids; read from DBOS' own tables."""
    from dbos._schemas.system_database import SystemSchema

    client = hook.get_client()
    echoes = client.list_workflows(name="wf_echo", load_input=True, load_output=False)
    ours = [s for s in echoes if s.workflow_id.startswith(PREFIX)]
    workflows = Counter(str(s.input["args"][0]) for s in ours if s.input)  # type: ignore[index]
    n = SystemSchema.notifications
    with client.system_database_engine.connect() as conn:
        rows = conn.execute(
            sa.select(n.c.message, n.c.serialization).where(n.c.destination_uuid == INBOX, n.c.topic == "once")
        ).all()
    messages = Counter(
        str(decode_value(m, tag, allow_pickle=False, workflow_id=INBOX, what="message")) for m, tag in rows
    )
    return workflows, messages, [s.workflow_id for s in ours]


def settled(
    stack: AirflowStack, engine: sa.Engine, hook: DBOSHook, nudge: Any, what: str, timeout: float = 480
) -> None:
    """Every asset event consumed by a finished run and every completion's work done.

    An event stored while the scheduler creates a run waits for the next run (docs/events.md, "DAG
    runs"): when events wait and no run is active, ``nudge()`` ends one more completion.
    """
    last: list[Any] = []
    nudged = [time.monotonic()]

    def done() -> bool:
        runs = downstream_runs(stack)
        states = Counter(r["state"] for r in runs)
        keys = set(keys_of(engine))
        workflows, messages, _ = dbos_counts(hook)
        consumed = set(runs_per_key(engine))
        last[:] = [dict(states), len(keys), len(consumed), len(workflows), len(messages)]
        finished = set(states) <= {"success", "failed"}
        if not consumed >= keys and finished and time.monotonic() - nudged[0] > 15:
            nudge()
            nudged[0] = time.monotonic()
        return consumed >= keys and finished and set(workflows) >= keys <= set(messages)

    try:
        stack.wait_until(done, timeout, what, interval=3)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; (run states, completions, consumed, workflows, messages): {last}") from None


def test_each_completion_s_work_happens_once_although_its_asset_event_came_twice(
    stack: AirflowStack, client: DBOSClient
) -> None:
    engine = event_stack.metadata(stack)
    hook = DBOSHook()
    try:
        # The inbox the downstream DAG sends to: a workflow no worker runs (its messages stay).
        client.enqueue({"queue_name": event_stack.UNPOLLED, "workflow_name": "wf_noop", "workflow_id": INBOX})
        stack.wait_until(lambda: len(event_stack.watermarks(engine)) == 1, 90, "the watcher stored a watermark")

        # A burst of cancellations, 20 every 0.2 s (100/s); the triggerer is killed (SIGKILL) after
        # the 4th batch and restarted once 60 more ended while no triggerer ran.
        burst: list[str] = []

        def produce() -> None:
            for i in range(6):
                burst.extend(event_stack.cancel_named(client, "once_burst", BATCH))
                if i == 3:
                    time.sleep(0.5)
                    stack.kill("triggerer")
                time.sleep(0.2)

        producer = threading.Thread(target=produce)
        producer.start()
        producer.join(60)
        burst.extend(event_stack.cancel_named(client, "once_burst", BATCH))
        stack.start_component("triggerer")
        stack.wait_until(
            lambda: {k.split("@")[0] for k in keys_of(engine)} >= set(burst), 120, "every completion delivered", 2
        )
        time.sleep(event_stack.DUPLICATE_WINDOW + 2)  # anything delivered twice is there by now

        def nudge() -> None:
            burst.extend(event_stack.cancel_named(client, "once_burst", 1))

        settled(stack, engine, hook, nudge, "every burst event consumed and its work done")

        keys = keys_of(engine)
        kill_duplicates = len(keys) - len(set(keys))
        in_other_runs = sum(1 for n in runs_per_key(engine).values() if n > 1)

        # One more duplicate, always: a completion replayed as a manual asset event (its own run).
        replayed = next(extra for extra, _ in event_stack.asset_events(engine, ASSET))
        (asset,) = [a for a in stack.api("GET", "/assets", params={"limit": 100})["assets"] if a["name"] == ASSET]
        stack.api("POST", "/assets/events", json={"asset_id": asset["id"], "extra": {"payload": replayed["payload"]}})
        replay_key = replayed["payload"]["completion_key"]
        stack.wait_until(lambda: runs_per_key(engine)[replay_key] >= 2, 180, "the replayed event consumed by a run")
        settled(stack, engine, hook, nudge, "the replay's run finished")

        keys = keys_of(engine)
        completions = set(keys)
        workflows, messages, workflow_ids = dbos_counts(hook)
        runs = downstream_runs(stack)
        print(
            f"\nonce: {len(burst)} completions ({len(burst) - BURST} ended later to start a run), {len(keys)} asset events, {kill_duplicates} duplicated by the kill "
            f"({in_other_runs} of them in another DAG run) + 1 replayed; {len(runs)} downstream runs; "
            f"downstream workflows {sum(workflows.values())} for {len(workflows)} completions "
            f"(duplicates: {sum(n - 1 for n in workflows.values())}); messages {sum(messages.values())} for "
            f"{len(messages)} completions (duplicates: {sum(n - 1 for n in messages.values())})"
        )
        assert {k.split("@")[0] for k in completions} == set(burst) and len(burst) >= BURST
        assert len(keys) - len(completions) == kill_duplicates + 1 >= 1  # the asset events had duplicates
        assert runs_per_key(engine)[replay_key] >= 2  # the replay reached a DAG run of its own
        # The work: exactly one downstream workflow and one message per completion.
        assert workflows == Counter({k: 1 for k in completions}), "a completion's workflow was enqueued twice"
        assert messages == Counter({k: 1 for k in completions}), "a completion's message was sent twice"
        assert len(workflow_ids) == len(completions)
        assert {r["state"] for r in runs} == {"success"}, Counter(r["state"] for r in runs)
    finally:
        hook.close()
        engine.dispose()
