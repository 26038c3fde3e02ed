"""P4's split of an event wake-up (bench/p4_event_latency.py): stamps and run-queue waits.

Bench-only: :class:`Hops` wraps the shared waiter's steps on one waiter instance (and the waiter
module's ``_settle``) for one phase and restores them; the product carries no timing code.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa


def _runq_ns(path: str) -> tuple[int, int]:
    """(ns spent runnable but waiting for a CPU, timeslices run) of a thread (Linux schedstat)."""
    try:
        with open(path) as f:
            _, wait, slices = f.read().split()
        return int(wait), int(slices)
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0


class Hops:
    """Per workflow id, the first time (``time.time()``) the waiter took its NOTIFY, its probe saw
    the event, ``_settle`` ran for it on the loop, ``observe`` returned it, and the trigger's value
    read (``ValueReader.event``, in a thread of the loop's default pool) started and ended."""

    def __init__(self, waiter: Any) -> None:
        from dbos_orchestrator.waiting import waiter as module

        self.notified: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.settled: dict[str, float] = {}
        self.observed: dict[str, float] = {}
        self.read_started: dict[str, float] = {}
        self.read_done: dict[str, float] = {}
        self.runq_notified_to_seen: list[float] = []
        self._runq_at_notify: dict[str, int] = {}
        self._waiter, self._module = waiter, module
        wakes, resolve, settle, observe = waiter.streams.wakes, waiter._resolve, module._settle, waiter.observe
        self._settle = settle

        def stamped_wakes(channel: str, payload: str, events: set[str]) -> bool:
            wid = payload.split("::", 1)[0]
            if wid not in self.notified:
                self.notified[wid] = time.time()
                self._runq_at_notify[wid] = _runq_ns("/proc/thread-self/schedstat")[0]
            return bool(wakes(channel, payload, events))

        def stamped_resolve(ready: list[tuple[Any, Any]]) -> None:
            now, runq = time.time(), _runq_ns("/proc/thread-self/schedstat")[0]
            for wait, _ in ready:
                self.seen.setdefault(wait.workflow_id, now)
                if wait.workflow_id in self._runq_at_notify:
                    self.runq_notified_to_seen.append((runq - self._runq_at_notify.pop(wait.workflow_id)) / 1e9)
            resolve(ready)

        def stamped_settle(batch: list[tuple[Any, Any]]) -> None:
            now = time.time()
            for wait, _ in batch:
                self.settled.setdefault(wait.workflow_id, now)
            settle(batch)

        async def stamped_observe(workflow_id: str, key: str | None = None, **kwargs: Any) -> Any:
            obs = await observe(workflow_id, key, **kwargs)
            self.observed.setdefault(workflow_id, time.time())
            return obs

        from dbos_orchestrator.store.values import ValueReader

        self._event = event = ValueReader.event

        def stamped_event(reader: ValueReader, workflow_id: str, key: str) -> tuple[bool, Any]:
            self.read_started.setdefault(workflow_id, time.time())
            try:
                return event(reader, workflow_id, key)
            finally:
                self.read_done.setdefault(workflow_id, time.time())

        ValueReader.event = stamped_event  # type: ignore[method-assign]
        waiter.streams.wakes = stamped_wakes
        waiter._resolve = stamped_resolve
        module._settle = stamped_settle
        waiter.observe = stamped_observe

    def close(self) -> None:
        for name in ("observe", "_resolve"):
            vars(self._waiter).pop(name, None)
        vars(self._waiter.streams).pop("wakes", None)
        self._module._settle = self._settle
        from dbos_orchestrator.store.values import ValueReader

        ValueReader.event = self._event  # type: ignore[method-assign]


class RunQueue:
    """Run-queue waits of thread groups from now to :meth:`finish`: the waiter's polling thread, the
    loop's thread (this one), this process' other threads, the DBOS worker process, and the Postgres
    backends connected to the bench database."""

    def __init__(self, waiter: Any, conn_id: str) -> None:
        import psutil

        me = psutil.Process()
        self.groups: dict[str, list[str]] = {
            "waiter thread": [f"/proc/self/task/{waiter._thread.native_id}/schedstat"],
            "loop thread": [f"/proc/self/task/{threading.get_native_id()}/schedstat"],
        }
        mine = set(self.groups["waiter thread"] + self.groups["loop thread"])
        self._me = me.pid
        self._mine = mine
        workers = [p for p in me.children(recursive=True) if any("app.py" in a for a in p.cmdline())]
        self.groups["DBOS worker"] = [f"/proc/{p.pid}/task/{t.id}/schedstat" for p in workers for t in p.threads()]
        with waiter.client.system_database_engine.connect() as conn:
            pids = conn.execute(
                sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            ).scalars()
            self.groups["Postgres backends"] = [f"/proc/{pid}/schedstat" for pid in pids]
        self._start = {path: _runq_ns(path) for paths in self.groups.values() for path in paths}
        self._start.update({path: _runq_ns(path) for path in self._other_threads()})

    def _other_threads(self) -> list[str]:
        tasks = Path(f"/proc/{self._me}/task")
        return [p for p in (f"{d}/schedstat" for d in tasks.iterdir()) if p not in self._mine]

    def finish(self) -> dict[str, dict[str, float]]:
        """Per group: seconds waited for a CPU and ms per timeslice, since construction."""
        groups = {**self.groups, "other threads of this process": self._other_threads()}
        out = {}
        for name, paths in groups.items():
            wait = slices = 0
            for path in paths:
                w0, s0 = self._start.get(path, (0, 0))
                w1, s1 = _runq_ns(path)
                if s1 >= s0:  # a pid reused by another process would go backwards
                    wait, slices = wait + w1 - w0, slices + s1 - s0
            out[name] = {"wait_s": wait / 1e9, "slices": slices, "per_slice_ms": wait / 1e6 / max(slices, 1)}
        return out


def read_commit_stamps(engine: sa.Engine, ids: list[str]) -> dict[str, float]:
    """When each workflow's ``set_event`` transaction was about to commit: DBOS' own record of the
    step (``operation_outputs.completed_at_epoch_ms``, whole ms), read through dbos' table definition."""
    from dbos._schemas.system_database import SystemSchema

    oo = SystemSchema.operation_outputs
    query = sa.select(oo.c.workflow_uuid, oo.c.completed_at_epoch_ms).where(
        oo.c.workflow_uuid.in_(ids), oo.c.function_name == "DBOS.setEvent"
    )
    with engine.connect() as conn:
        return {str(w): int(ms) / 1000 for w, ms in conn.execute(query) if ms is not None}


def read_notify_stamps(path: Path, ids: set[str]) -> dict[str, float]:
    """When the bench worker's NOTIFY flush for each workflow's event returned (bench/app.py)."""
    out: dict[str, float] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        at, payload = line.split(" ", 1)
        wid = payload.split("::", 1)[0]
        if wid in ids:
            out.setdefault(wid, float(at))
    return out
