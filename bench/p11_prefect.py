"""P11: prefect-dbos in a Prefect process: enqueue+wait of a no-op workflow, and 1,000 concurrent waits.

Prefect 3.9 and Airflow 3.3 cannot share a virtualenv, so ``python -m bench p11`` (the Airflow
venv, like every figure) runs the measuring in a child process on the Prefect venv
(``.venv-prefect/bin/python -m bench.p11_prefect --measure OUT``; ``$P11_PREFECT_PYTHON``
overrides the interpreter; ``make install-prefect`` creates it), then reports its rows. The child
starts a Prefect API server (``prefect.testing.utilities.prefect_test_harness``: a real server
on SQLite in a temp dir, analytics off) and the bench worker (bench/app.py) on a fresh system
database (bench/harness.py), and measures, in this order, on that one database:

* **enqueue+wait**: the wall time of calling an async flow that runs ``aenqueue_workflow`` then
  ``await_workflow`` on bench/app.py ``noop`` (queue ``bench``, polled every 0.1 s), against a flow
  that runs one no-op async task (the Prefect floor); ``RUNS`` of each, alternately, after one
  warm-up each; medians. The difference is what prefect-dbos and DBOS add; goal <= +0.3 s.
* **plain pollers**: 1,000 workflows ``sleep_until_stamp`` (they end ``SPREAD`` s apart in all and
  return ``time.time()`` just before returning), waited on by 1,000
  ``retrieve_workflow_async(id).get_result()`` on one ``dbos.DBOSClient`` in this process.
* **prefect-dbos**: 1,000 more such workflows, waited on by one flow that runs 1,000
  ``await_workflow`` tasks concurrently (``asyncio.gather``): all share the process' one waiter.

While nothing changes (a ``WINDOW``-second window once all 1,000 waits are registered) each side
counts server transactions on the system database (``pg_stat_database``; the waiter runs in
autocommit, one statement = one transaction) minus those of a baseline window of the same
length just before its waits start, with its 1,000 workflows already sleeping (the worker's own
polling); goal <= 20/s. Wake-up: the workflow's stamp -> the wait returned in this process (for
prefect-dbos: the ``await_workflow`` task returned in the flow, after its closing line, its summary
artifact queued (written after the task returns, by the process' artifact writer, which the figure
then waits for, checking that every wait's artifact is in the Prefect API) and the safe read of the
output); split at the status row's ``updated_at`` (the worker's
commit); goal p99 <= 0.2 s.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    RESULTS,
    ROOT,
    Env,
    Row,
    StatementCounter,
    bench_env,
    fmt_s,
    median,
    percentile,
    report,
    server_transactions,
)

RUNS = int(os.environ.get("P11_RUNS", "10"))
WAITS = int(os.environ.get("P11_WAITS", "1000"))  # smaller only to try the figure out
WINDOW = 10.0
SPREAD = float(os.environ.get("P11_SPREAD", "20"))  # seconds over which each side's 1,000 workflows end
PLAIN_LEAD = 35.0  # enqueue -> first end, plain side: baseline + pollers started + window
OURS_LEAD = float(os.environ.get("P11_SETUP", "150"))  # the same for prefect-dbos: 1,000 Prefect task runs start
QUEUE = "bench"
PREFECT_PYTHON = Path(os.environ.get("P11_PREFECT_PYTHON", str(ROOT / ".venv-prefect" / "bin" / "python")))


# -- the child: runs in the Prefect venv ------------------------------------------------------


def _enqueue(client: Any, prefix: str, until: float) -> list[str]:
    """``WAITS`` workflows ending ``SPREAD`` s apart in all, from wall-clock ``until`` on."""
    from dbos import WorkflowSerializationFormat

    ids = []
    for i in range(WAITS):
        options = {
            "workflow_name": "sleep_until_stamp",
            "queue_name": QUEUE,
            "workflow_id": f"{prefix}-{i}",
            "serialization_type": WorkflowSerializationFormat.PORTABLE,
        }
        ids.append(str(client.enqueue(options, until + SPREAD * i / WAITS).workflow_id))
    return ids


def _stamps(client: Any, ids: list[str], deadline: float) -> dict[str, tuple[float, float]]:
    """``{id: (returned stamp, status row updated)}`` once every workflow ended."""
    while time.time() < deadline:
        rows = client.list_workflows(workflow_ids=ids, load_input=False, load_output=True)
        if len(rows) == len(ids) and all(r.status == "SUCCESS" for r in rows):
            return {r.workflow_id: (float(r.output), r.updated_at / 1000) for r in rows}
        time.sleep(1)
    raise RuntimeError("the P11 workflows did not all end")


def _until_sleeping(env: Env, prefix: str, timeout: float = 120) -> None:
    """Until every workflow ``<prefix>-*`` recorded its sleep step: their start-up is not the baseline."""
    deadline = time.monotonic() + timeout
    query = "SELECT count(DISTINCT workflow_uuid) FROM dbos.operation_outputs WHERE workflow_uuid LIKE :p"
    while int(env.sql(query, p=f"{prefix}-%")[0][0]) < WAITS:
        if time.monotonic() > deadline:
            raise RuntimeError("the bench worker did not start the P11 workflows")
        time.sleep(0.5)
    time.sleep(2.0)


async def _xacts_per_s(env: Env) -> float:
    """Server transactions/s on the system database over the next ``WINDOW`` s."""
    x0, t0 = await asyncio.to_thread(server_transactions, env), time.monotonic()
    await asyncio.sleep(WINDOW)
    return (await asyncio.to_thread(server_transactions, env) - x0) / (time.monotonic() - t0)


def _wakeups(returned: dict[str, float], stamps: dict[str, tuple[float, float]]) -> dict[str, list[float]]:
    ids = sorted(stamps)
    return {
        "stamp_to_returned": [returned[w] - stamps[w][0] for w in ids],
        "commit_lag": [stamps[w][1] - stamps[w][0] for w in ids],
        "committed_to_returned": [returned[w] - stamps[w][1] for w in ids],
    }


async def _enqueue_and_wait(database: Any) -> dict[str, list[float]]:
    from prefect import flow, task
    from prefect_dbos import aenqueue_workflow, await_workflow

    @task(name="p11-noop")
    async def noop_task() -> None:
        return None

    @flow(name="p11-floor")
    async def floor() -> None:
        await noop_task()

    @flow(name="p11-enqueue-and-wait")
    async def dbos_noop(database: Any) -> None:
        workflow_id = await aenqueue_workflow(database, QUEUE, "noop")
        await await_workflow(database, workflow_id)

    async def timed(call: Any) -> float:
        start = time.perf_counter()
        await call()
        return time.perf_counter() - start

    await timed(floor)  # warm up: imports, the API's first flow run, the client, the waiter
    await timed(lambda: dbos_noop(database))
    times: dict[str, list[float]] = {"floor": [], "dbos": []}
    for _ in range(RUNS):
        times["floor"].append(await timed(floor))
        times["dbos"].append(await timed(lambda: dbos_noop(database)))
    return times


async def _plain_waits(env: Env) -> dict[str, Any]:
    import dbos

    client = dbos.DBOSClient(system_database_url=env.system_database_url)
    try:
        counter = StatementCounter(client._sys_db.engine)
        until = time.time() + PLAIN_LEAD
        ids = await asyncio.to_thread(_enqueue, client, "p11-plain", until)
        await asyncio.to_thread(_until_sleeping, env, "p11-plain")
        baseline = await _xacts_per_s(env)  # the worker's own polling, workflows sleeping
        started = 0

        async def one(workflow_id: str) -> tuple[str, float]:
            nonlocal started
            handle = await client.retrieve_workflow_async(workflow_id)
            started += 1
            await handle.get_result()
            return workflow_id, time.time()

        tasks = [asyncio.create_task(one(w)) for w in ids]
        while started < WAITS:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # let set-up reads finish: measure the steady state
        s0, t0 = counter.count, time.monotonic()
        xacts = await _xacts_per_s(env)
        engine_stmts = (counter.count - s0) / (time.monotonic() - t0)
        if time.time() > until:
            raise RuntimeError("the plain pollers' workflows ended before the quiet window")
        returned = dict(await asyncio.gather(*tasks))
        stamps = await asyncio.to_thread(_stamps, client, ids, time.time() + 60)
    finally:
        client.destroy()
    return {
        "statements_per_s": engine_stmts,
        "server_xacts_per_s_net": xacts - baseline,
        "baseline_xacts_per_s": baseline,
        **_wakeups(returned, stamps),
    }


async def _count_summaries(ids: list[str]) -> int:
    """How many of ``ids`` have their summary artifact in the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect_dbos.links import artifact_key

    found = 0
    async with get_client() as client:
        for start in range(0, len(ids), 200):
            keys = [artifact_key("summary", w) for w in ids[start : start + 200]]
            found += len(await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))))
    return found


class _GcPauses:
    """Python's garbage collections (each stops every thread) while the waits end: count and durations."""

    def __init__(self) -> None:
        self.seen: list[float] = []
        self.count = 0
        self._began = 0.0

    def _on(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.count += 1
            self.seen.append(time.perf_counter() - self._began)

    def start(self) -> None:
        gc.callbacks.append(self._on)

    def stop(self) -> None:
        gc.callbacks.remove(self._on)


async def _prefect_waits(env: Env, database: Any, *, summary_artifact: bool = True) -> dict[str, Any]:
    import prefect_dbos.operations
    from prefect import flow
    from prefect_dbos import await_workflow
    from prefect_dbos.artifacts import aflush_artifacts

    @flow(name="p11-1000-waits")
    async def many(database: Any, ids: list[str]) -> dict[str, float]:
        async def one(workflow_id: str) -> tuple[str, float]:
            await await_workflow(database, workflow_id, summary_artifact=summary_artifact)
            return workflow_id, time.time()

        return dict(await asyncio.gather(*(one(w) for w in ids)))

    client = database.get_client()  # the core's client (this process' only one on the database)
    until = time.time() + OURS_LEAD
    prefix = "p11-prefect" if summary_artifact else "p11-prefect-quiet"
    ids = await asyncio.to_thread(_enqueue, client, prefix, until)
    await asyncio.to_thread(_until_sleeping, env, prefix)
    baseline = await _xacts_per_s(env)  # the worker's own polling, workflows sleeping
    waiter = await database.waiter()  # the process' shared waiter: the flow's tasks get this one
    probes0 = waiter.probes
    # Every statement this process sends to the system database: the waiter's engine and the
    # block's client's (status and value reads after a wake-up).
    counters = [StatementCounter(waiter.client.system_database_engine), StatementCounter(client.system_database_engine)]
    # Stamps of the wake-up's parts: the shared waiter resolved the wait (``seen``), the task's
    # body (prefect-dbos' wait: status, summary artifact queued, safe read, closing line) returned.
    seen: dict[str, float] = {}
    body: dict[str, float] = {}
    observe, wait = waiter.observe, prefect_dbos.operations.wait

    async def stamped_observe(workflow_id: str, key: str | None = None, *, deadline: float | None = None) -> Any:
        observation = await observe(workflow_id, key, deadline=deadline)
        seen.setdefault(workflow_id, time.time())
        return observation

    async def stamped_wait(database: Any, workflow_id: str, **kwargs: Any) -> Any:
        result = await wait(database, workflow_id, **kwargs)
        body[workflow_id] = time.time()
        return result

    waiter.observe = stamped_observe  # type: ignore[method-assign]
    prefect_dbos.operations.wait = stamped_wait
    pauses = _GcPauses()  # a collection stops every thread: the longest ones explain the worst wake-ups
    t_start = time.monotonic()
    run = asyncio.create_task(many(database, ids))
    while waiter.pending < WAITS:
        if run.done():
            run.result()  # raises the flow's failure
            raise RuntimeError("the flow ended before its 1,000 waits were registered")
        if time.time() > until - WINDOW - 10:
            raise RuntimeError(f"1,000 await_workflow tasks were not all waiting {OURS_LEAD:.0f} s after enqueue")
        await asyncio.sleep(0.1)
    registered_s = time.monotonic() - t_start
    await asyncio.sleep(3.0)  # let set-up reads finish: measure the steady state
    p0, s0, t0 = waiter.probes, sum(c.count for c in counters), time.monotonic()
    xacts = await _xacts_per_s(env)
    probes = (waiter.probes - p0) / (time.monotonic() - t0)
    sent = (sum(c.count for c in counters) - s0) / (time.monotonic() - t0)
    if time.time() > until:
        raise RuntimeError("the prefect-dbos side's workflows ended before the quiet window")
    load = os.getloadavg()
    pauses.start()
    returned = await run
    pauses.stop()
    # The summary artifacts are written after the waits return (prefect_dbos.artifacts): how long
    # after the last wait returned the writer had written them all, and that each one is there.
    flushed = await aflush_artifacts(timeout=600)
    drained_s = time.time() - max(returned.values())
    artifacts = await _count_summaries(ids) if summary_artifact else 0
    if summary_artifact and (not flushed or artifacts != len(ids)):
        raise RuntimeError(f"{artifacts} of {len(ids)} summary artifacts written (writer flushed: {flushed})")
    stamps = await asyncio.to_thread(_stamps, client, ids, time.time() + 60)
    committed = {w: stamps[w][1] for w in ids}

    def span(a: dict[str, float], b: dict[str, float]) -> list[float]:
        return [b[w] - a[w] for w in ids if w in a and w in b]

    return {
        "statements_per_s": sent,
        "server_xacts_per_s_net": xacts - baseline,
        "committed_to_seen": span(committed, seen),
        "seen_to_body_returned": span(seen, body),
        "body_to_task_returned": span(body, returned),
        "summary_artifacts": artifacts,
        "artifacts_written_after_last_return_s": drained_s,
        "waiter_probes_per_s": probes,
        "waiter_probes_total": waiter.probes - probes0,
        "baseline_xacts_per_s": baseline,
        "registered_after_s": registered_s,
        "load_before_completions": load,
        "gc_pauses_while_ending_s": sorted(pauses.seen, reverse=True)[:10],
        "gc_collections_while_ending": pauses.count,
        **_wakeups(returned, stamps),
    }


async def _measure_all(env: Env) -> dict[str, Any]:
    from prefect_dbos import DBOSSystemDatabase

    database = DBOSSystemDatabase(system_database_url=env.system_database_url)
    latency = await _enqueue_and_wait(database)
    plain = await _plain_waits(env)
    ours = await _prefect_waits(env, database)
    # The same 1,000 waits without their summary artifacts: the wake-up without Prefect API writes.
    quiet = await _prefect_waits(env, database, summary_artifact=False)
    return {
        "enqueue_and_wait_s": latency,
        "plain": plain,
        "ours": ours,
        "ours_quiet": quiet,
        "spread_s": SPREAD,
        "runs": RUNS,
    }


def measure(out: Path) -> None:
    """The child's work (Prefect venv): a Prefect test server, the bench env, the three phases."""
    home = Path(tempfile.mkdtemp(prefix="p11-prefect-home-"))
    os.environ["PREFECT_HOME"] = str(home)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120), bench_env() as env:
        data = asyncio.run(_measure_all(env))
    out.write_text(json.dumps(data))


# -- the parent: runs in the Airflow venv, like every figure ----------------------------------


def _pcts(values: list[float]) -> str:
    return f"p50 {fmt_s(percentile(values, 50))} / p99 {fmt_s(percentile(values, 99))}"


def rows_of(data: dict[str, Any]) -> list[Row]:
    latency, plain, ours = data["enqueue_and_wait_s"], data["plain"], data["ours"]
    floor, dbos_s = median(latency["floor"]), median(latency["dbos"])
    added = dbos_s - floor
    spread = f"completions spread over {data['spread_s']:.0f} s"
    p99_plain, p99_ours = percentile(plain["stamp_to_returned"], 99), percentile(ours["stamp_to_returned"], 99)
    return [
        Row(
            "P11 Prefect flow: enqueue+wait of a no-op DBOS workflow (flow call seconds)",
            f"{floor:.2f} s (flow with one no-op task)",
            f"{dbos_s:.2f} s (+{added:.2f} s; aenqueue_workflow + await_workflow)",
            f"{dbos_s / floor:.2f}",
            f"{data['runs']} runs each (median)",
            "<= +0.3 s",
            "met" if added <= 0.3 else "MISSED",
        ),
        Row(
            "P11 1,000 waits in one Prefect process: DB statements/s the process sends while nothing changes",
            f"{plain['statements_per_s']:.0f}/s (1,000 get_result() pollers)",
            f"{ours['statements_per_s']:.1f}/s (1,000 await_workflow tasks in one flow)",
            f"{ours['statements_per_s'] / max(plain['statements_per_s'], 1e-9):.3f}",
            f"{WAITS} waits, {WINDOW:.0f} s window; SQLAlchemy statements on the process' engines",
            "<= 20/s",
            "met" if ours["statements_per_s"] <= 20 else "MISSED",
        ),
        Row(
            "P11 1,000 waits in one Prefect process: server transactions/s (minus worker baseline)",
            f"{plain['server_xacts_per_s_net']:.0f}/s",
            f"{ours['server_xacts_per_s_net']:.0f}/s",
            "",
            f"pg_stat_database, {WINDOW:.0f} s window minus a {WINDOW:.0f} s baseline before it "
            f"({plain['baseline_xacts_per_s']:.0f}/s, {ours['baseline_xacts_per_s']:.0f}/s)",
        ),
        Row(
            "P11 1,000 waits in one Prefect process: wake-up, workflow returns -> wait returns",
            f"{_pcts(plain['stamp_to_returned'])} (get_result returns)",
            f"{_pcts(ours['stamp_to_returned'])} (await_workflow task returns in the flow; defaults: "
            f"{ours.get('summary_artifacts', 0):,} summary artifacts, all written "
            f"{ours.get('artifacts_written_after_last_return_s', 0):.1f} s after the last wait returned)",
            f"{p99_ours / p99_plain:.2f}",
            f"{WAITS}; ratio of p99s; {spread}",
            "p99 <= 0.2 s",
            "met" if p99_ours <= 0.2 else "MISSED",
        ),
        Row(
            "P11 1,000 waits in one Prefect process: the parts: DBOS worker commit lag; committed -> wait returns",
            f"commit lag {_pcts(plain['commit_lag'])}; committed -> returned {_pcts(plain['committed_to_returned'])}",
            f"commit lag {_pcts(ours['commit_lag'])}; committed -> returned {_pcts(ours['committed_to_returned'])}: "
            f"committed -> waiter saw {_pcts(ours['committed_to_seen'])}, saw -> prefect-dbos' wait returned "
            f"{_pcts(ours['seen_to_body_returned'])}, -> Prefect's task returned "
            f"{_pcts(ours['body_to_task_returned'])}",
            "",
            f"updated_at - stamp; stamps in this process; {_gc(ours)}; {spread}",
        ),
        *_quiet_rows(data, plain, spread),
    ]


def _quiet_rows(data: dict[str, Any], plain: dict[str, Any], spread: str) -> list[Row]:
    """The 1,000 waits again with ``summary_artifact=False`` (README of prefect-dbos, "Many waits in one flow")."""
    quiet = data.get("ours_quiet")
    if quiet is None:
        return []
    p99_plain, p99 = percentile(plain["stamp_to_returned"], 99), percentile(quiet["stamp_to_returned"], 99)
    return [
        Row(
            "P11 1,000 waits in one Prefect process, summary_artifact=False: wake-up, workflow returns -> wait returns",
            f"{_pcts(plain['stamp_to_returned'])} (get_result returns)",
            f"{_pcts(quiet['stamp_to_returned'])} (await_workflow task returns; committed -> waiter saw "
            f"{_pcts(quiet['committed_to_seen'])}); {quiet['statements_per_s']:.1f} statements/s while waiting",
            f"{p99 / p99_plain:.2f}",
            f"{WAITS}; ratio of p99s; {_gc(quiet)}; {spread}",
            "p99 <= 0.2 s",
            "met" if p99 <= 0.2 else "MISSED",
        )
    ]


def _gc(side: dict[str, Any]) -> str:
    pauses = side.get("gc_pauses_while_ending_s") or [0.0]
    return (
        f"{side.get('gc_collections_while_ending', 0)} GC collections while ending, longest {pauses[0] * 1000:.0f} ms"
    )


def main() -> None:
    if not PREFECT_PYTHON.exists():
        raise SystemExit(f"P11 runs in the Prefect venv ({PREFECT_PYTHON} is missing): run `make install-prefect`")
    RESULTS.mkdir(exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix="p11-")) / "p11.json"
    log = RESULTS / "p11-prefect.log"
    with log.open("w") as sink:
        done = subprocess.run(
            [str(PREFECT_PYTHON), "-m", "bench.p11_prefect", "--measure", str(out)],
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0 or not out.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise SystemExit(f"the P11 child (Prefect venv) failed with {done.returncode}; its log: {log}\n{tail}")
    data = json.loads(out.read_text())
    report("p11", rows_of(data), data)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        measure(Path(sys.argv[2]))
    else:
        main()
