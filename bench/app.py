"""The benchmarks' own DBOS application, run as a worker subprocess by bench/harness.py.

    DBOS_SYSTEM_DATABASE_URL=postgresql://.../x_dbos_sys python bench/app.py

Every workflow records ``time.time()`` right before the moment the benchmark measures from
(its return, or its ``set_event``), so "worker finished -> wait returned" is measured on one
machine clock. Never imported by the benchmark process itself (it constructs the DBOS singleton).
"""

from __future__ import annotations

import os
import signal
import threading
import time

from dbos import DBOS, DBOSConfig, WorkflowSerializationFormat

QUEUE = "bench"  # polled by this worker
UNPOLLED_QUEUE = "bench_nobody"  # polled by nobody: enqueue benchmarks leave their rows here
APP_VERSION = "bench"


@DBOS.workflow()
def noop() -> None:
    return None


@DBOS.workflow()
def finish_stamp(delay: float) -> float:
    """Sleep ``delay`` seconds, then return the wall-clock time just before returning."""
    DBOS.sleep(delay)
    return time.time()


@DBOS.workflow()
def event_stamp(key: str, delay: float, linger: float) -> None:
    """After ``delay`` s publish ``key`` = the wall-clock time just before ``set_event``; stay PENDING ``linger`` s."""
    DBOS.sleep(delay)
    DBOS.set_event(key, time.time())
    DBOS.sleep(linger)


@DBOS.workflow()
def stream_stamps(key: str, count: int, delay: float, gap: float, linger: float) -> None:
    """After ``delay`` s write ``count`` values to stream ``key``, ``gap`` s apart, each the wall-clock
    time right before its ``write_stream`` (portable JSON); close it and stay PENDING ``linger`` s."""
    DBOS.sleep(delay)
    for _ in range(count):
        DBOS.write_stream(key, time.time(), serialization_type=WorkflowSerializationFormat.PORTABLE)
        DBOS.sleep(gap)
    DBOS.close_stream(key)
    DBOS.sleep(linger)


@DBOS.workflow()
def many_events(count: int, delay: float, linger: float) -> None:
    """After ``delay`` s publish keys k0..k{count-1}, each with the time just before its ``set_event``."""
    DBOS.sleep(delay)
    for i in range(count):
        DBOS.set_event(f"k{i}", time.time())
    DBOS.sleep(linger)


@DBOS.step()
def view_step(i: int) -> dict[str, int]:
    return {"i": i, "square": i * i}


@DBOS.workflow()
def many_steps(count: int) -> int:
    """``count`` recorded steps, for the workflow view's benchmark (P7)."""
    for i in range(count):
        view_step(i)
    return count


@DBOS.workflow()
def sleep_until_stamp(until: float) -> float:
    """Sleep (durably) until wall-clock ``until``, then return the time just before returning."""
    DBOS.sleep(max(0.0, until - time.time()))
    return time.time()


def _stamp_notifies(path: str) -> None:
    """Bench-only: after each of DBOS' coalesced NOTIFY flushes, append ``<time> <payload>`` lines
    to ``path`` for the event payloads it sent (P4's split: set_event committed -> NOTIFY sent).

    DBOS (3.x) does not NOTIFY in ``set_event``'s transaction: it queues the payload and a notifier
    thread sends the queued ones every ``notification_coalesce_sec`` (0.01 s) in one transaction.
    Payloads queued while a flush runs are stamped by the next one (or missed: a part of N).
    """
    from dbos._sys_db_postgres import PostgresSystemDatabase

    flush = PostgresSystemDatabase._flush_notifications
    out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the worker

    def stamped(self: PostgresSystemDatabase) -> None:
        with self._notifier_lock:
            payloads = sorted(self._pending_notifications.get("dbos_workflow_events_channel", ()))
        flush(self)
        if payloads:
            now = time.time()
            out.write("".join(f"{now} {p}\n" for p in payloads))
            out.flush()

    PostgresSystemDatabase._flush_notifications = stamped  # type: ignore[method-assign]


def main() -> None:
    if os.environ.get("BENCH_NOTIFY_STAMPS"):
        _stamp_notifies(os.environ["BENCH_NOTIFY_STAMPS"])
    config: DBOSConfig = {
        "name": "dbos-airflow-bench",
        "system_database_url": os.environ["DBOS_SYSTEM_DATABASE_URL"],
        "application_version": APP_VERSION,
        "executor_id": "bench-worker",
    }
    DBOS(config=config)
    DBOS.launch()
    DBOS.register_queue(QUEUE, polling_interval_sec=0.1)
    print("BENCH WORKER READY", flush=True)
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
