"""The tests' own DBOS application, run as a worker subprocess by tests/conftest.py.

    DBOS_SYSTEM_DATABASE_URL=postgresql://.../x_dbos_sys python tests/dbos_app.py

It prints ``WORKER READY`` once launched and its queues are registered. Never imported by
Airflow or the tests themselves (it would construct the DBOS singleton in their process).
"""

from __future__ import annotations

import collections
import os
import signal
import sys
import threading
import time

from dbos import DBOS, DBOSConfig, WorkflowSerializationFormat

QUEUES = ("q", "q_other")
# A partitioned queue (tests/integration/test_partitions.py): DBOS dequeues only workflows with a partition key.
PARTITIONED_QUEUE = "q_part"
# Another version only in a system database of its own (tests/integration/test_operations.py):
# a worker registering a new version makes it the latest, which moves version-less workflows to it.
APP_VERSION = os.environ.get("DBOS_TEST_APP_VERSION", "test")

# Per-workflow run counters live in this process: they count real executions of steps.
STEP_RUNS: collections.Counter[str] = collections.Counter()


class AppError(Exception):
    pass


@DBOS.workflow()
def wf_double(x: int) -> int:
    return x * 2


@DBOS.workflow()
def wf_echo(*args: object, **kwargs: object) -> dict[str, object]:
    return {"args": list(args), "kwargs": kwargs}


@DBOS.workflow()
def wf_noop() -> None:
    return None


@DBOS.workflow()
def wf_fail(msg: str) -> None:
    raise AppError(msg)


@DBOS.workflow()
def wf_event_recv(topic: str) -> str:
    DBOS.set_event("status", "waiting")
    msg = DBOS.recv(topic, timeout_seconds=600)
    DBOS.set_event("status", "done")
    return f"got:{msg}"


@DBOS.workflow()
def wf_approval(order: str, topic: str, question: object = None, gate: str | None = None) -> object:
    """Asks for an approval (event ``approval_request``) and returns the answer it receives; with
    ``gate``, it asks only after a message on that topic (a test holds the question back)."""
    if gate is not None:
        DBOS.recv(gate, timeout_seconds=600)
    DBOS.set_event(
        "approval_request",
        question
        if question is not None
        else {
            "subject": f"Ship order {order}?",
            "body": f"Order **{order}** is ready to ship.",
            "params": {"note": {"type": "string", "default": ""}},
        },
    )
    return DBOS.recv(topic, timeout_seconds=600)


@DBOS.workflow()
def wf_set_event_later(key: str, value: object, delay: float) -> str:
    DBOS.sleep(delay)
    DBOS.set_event(key, value)
    return "set"


@DBOS.workflow()
def wf_sleep(seconds: float) -> str:
    DBOS.sleep(seconds)
    return "slept"


@DBOS.workflow()
def wf_recv_all(topic: str, count: int, timeout: float, first_timeout: float | None = None) -> list[object]:
    """Collect up to ``count`` messages; returns what arrived within ``timeout`` each (the first: within
    ``first_timeout``, when given: a DAG run that sends it may take long to start on a loaded machine)."""
    got: list[object] = []
    for _ in range(count):
        msg = DBOS.recv(topic, timeout_seconds=timeout if got or first_timeout is None else first_timeout)
        if msg is None:
            break
        got.append(msg)
    return got


@DBOS.step()
def step_a() -> int:
    STEP_RUNS[f"{DBOS.workflow_id}:a"] += 1
    return STEP_RUNS[f"{DBOS.workflow_id}:a"]


@DBOS.step(retries_allowed=False)
def step_b() -> int:
    STEP_RUNS[f"{DBOS.workflow_id}:b"] += 1
    if STEP_RUNS[f"{DBOS.workflow_id}:b"] == 1:
        raise AppError("step_b fails on its first run")
    return STEP_RUNS[f"{DBOS.workflow_id}:b"]


@DBOS.workflow()
def wf_flaky() -> dict[str, int]:
    """Step A counts its runs; step B fails the first time it runs for this workflow id."""
    step_a()
    step_b()
    wid = DBOS.workflow_id
    return {"a_runs": STEP_RUNS[f"{wid}:a"], "b_runs": STEP_RUNS[f"{wid}:b"]}


@DBOS.step()
def crash_here() -> None:
    if os.environ.get("DBOS_TEST_CRASH"):
        os._exit(3)  # the process dies mid-workflow, as on a machine failure


@DBOS.workflow(max_recovery_attempts=1)
def wf_crash() -> str:
    """Kills its worker every time it runs: recovery gives up and dead-letters it."""
    crash_here()
    return "survived"


@DBOS.step()
def counted_step(i: int) -> int:
    """Prints one line per real execution: the deployment tests count them in the worker's output."""
    # One write per line: print() writes the text and the newline separately, so two steps of
    # concurrent workflows could share a line and one of them would not be counted.
    sys.stdout.write(f"STEP RAN {DBOS.workflow_id} {i}\n")
    sys.stdout.flush()
    return i


@DBOS.workflow()
def wf_counted_steps(n: int, delay: float) -> int:
    """``n`` counted steps, ``delay`` seconds apart (a durable sleep)."""
    total = 0
    for i in range(n):
        total += counted_step(i)
        DBOS.sleep(delay)
    return total


@DBOS.workflow()
def wf_progress(key: str, values: list[object], delay: float) -> str:
    """Publishes each of ``values`` as event ``key``, ``delay`` seconds apart."""
    for value in values:
        DBOS.set_event(key, value)
        DBOS.sleep(delay)
    return "done"


@DBOS.dbos_class()
class Calculator:
    """Reached only with ``workflow_class_name="Calculator"``."""

    factor = 10

    @classmethod
    @DBOS.workflow()
    def scale(cls, x: int) -> int:
        return cls.factor * x


@DBOS.step()
def ui_step(tag: str, number: int) -> int:
    """Counts its real runs per (tag, number): a fork that reuses a step's checkpoint does not run it."""
    STEP_RUNS[f"{tag}:{number}"] += 1
    return STEP_RUNS[f"{tag}:{number}"]


@DBOS.workflow()
def wf_steps(tag: str) -> dict[str, int]:
    """Three recorded steps (tests/browser/test_ui_workflow_view.py); returns how often each one ran."""
    for number in (1, 2, 3):
        ui_step(tag, number)
    DBOS.set_event("done", {"steps": 3})
    return {f"step{n}_runs": STEP_RUNS[f"{tag}:{n}"] for n in (1, 2, 3)}


@DBOS.step(retries_allowed=False)
def item_step(i: int, fail: str | None) -> int:
    STEP_RUNS[f"{DBOS.workflow_id}:item"] += 1
    runs = STEP_RUNS[f"{DBOS.workflow_id}:item"]
    if fail == "always" or (fail == "first" and runs == 1):
        raise AppError(f"item {i} failed on run {runs}")
    return runs


@DBOS.workflow()
def wf_item(i: int, fail: str | None = None, sleep: float = 0.0) -> dict[str, int]:
    """One item of a fan-out (tests/test_batch_waits.py): sleeps, then one counted step that fails
    ``always``, on its ``first`` run only, or never; returns its index and the step's real runs."""
    if sleep:
        DBOS.sleep(sleep)
    return {"i": i, "runs": item_step(i, fail)}


@DBOS.workflow()
def wf_scheduled(scheduled_time: object, context: object) -> str:
    """The target of the schedules tests (tests/integration/test_operations.py): DBOS passes the time and context."""
    return f"ran for {scheduled_time}"


@DBOS.workflow()
def wf_retained(i: int) -> int:
    """Only the retention test enqueues it, so deleting every ended one touches no other test's rows."""
    return i


@DBOS.workflow()
def wf_whoami() -> dict[str, object]:
    """What DBOS restored of the enqueuer's identity (``authenticated_user``/``authenticated_roles``)."""
    return {"user": DBOS.authenticated_user, "roles": DBOS.authenticated_roles}


@DBOS.workflow()
def wf_stream(
    key: str,
    n: int,
    delay: float,
    close: bool = True,
    fail: bool = False,
    size: int = 0,
    pause_at: int = -1,
    numeric: bool = False,
    start_after: float = 0.0,
    gate_at: int = -1,
) -> int:
    """Writes ``{"i": i}`` (with ``"pad"``: ``size`` characters) to stream ``key`` ``n`` times,
    ``delay`` seconds apart (a wall-clock pause, not a step: 1,000 writes at 200/s are 1,000
    checkpointed writes only), then closes it (or not), or fails; before value ``pause_at`` it pauses 5 s.
    ``numeric`` writes percentages instead (``100 * (i + 1) / n``: a progress stream); nothing is
    written for ``start_after`` seconds; before value ``gate_at`` it waits for message ``go``."""
    time.sleep(start_after)
    for i in range(n):
        if i == gate_at:
            DBOS.recv("go", timeout_seconds=300)
        if i == pause_at:
            time.sleep(5)
        if numeric:
            DBOS.write_stream(key, 100 * (i + 1) / n)
        else:
            DBOS.write_stream(key, {"i": i, "pad": "x" * size} if size else {"i": i})
        if delay:
            time.sleep(delay)
    if fail:
        raise AppError(f"stream {key} failed after {n} values")
    if close:
        DBOS.close_stream(key)
    return n


@DBOS.workflow()
def wf_stream_pickled(key: str) -> str:
    """One value written with the application's native serializer (a pickle), then closed."""
    DBOS.write_stream(key, {"secret": "pickled"}, serialization_type=WorkflowSerializationFormat.NATIVE)
    DBOS.close_stream(key)
    return "done"


def main() -> None:
    config: DBOSConfig = {
        "name": "dbos-airflow-tests",
        "system_database_url": os.environ["DBOS_SYSTEM_DATABASE_URL"],
        "application_version": APP_VERSION,
        "executor_id": os.environ.get("DBOS_EXECUTOR_ID", "test-worker"),
        # DBOS' default pool holds 20 connections; CI runs three sessions (two pytest-xdist workers and
        # the Prefect suite), each with its worker, on one Postgres (max_connections 100).
        "sys_db_pool_size": 8,
    }
    otlp = os.environ.get("DBOS_TEST_OTLP_TRACES_ENDPOINT")  # tests/integration/test_tracing.py
    if otlp:
        config["enable_otlp"] = True
        config["otlp_traces_endpoints"] = [otlp]
    DBOS(config=config)
    crasher = bool(os.environ.get("DBOS_TEST_CRASH"))
    DBOS.listen_queues(["q_crash"] if crasher else [*QUEUES, PARTITIONED_QUEUE])  # queues are shared DB rows
    DBOS.launch()
    for name in QUEUES:
        DBOS.register_queue(name, polling_interval_sec=0.2)
    DBOS.register_queue(PARTITIONED_QUEUE, partition_concurrency=2, polling_interval_sec=0.2)
    if crasher:
        DBOS.register_queue("q_crash", polling_interval_sec=0.2)
    print("WORKER READY", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1):
        pass
    DBOS.destroy(destroy_registry=False)
    time.sleep(0.1)
    os._exit(0)


if __name__ == "__main__":
    main()
