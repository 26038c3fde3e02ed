"""Where a task's stream reading stands, across retries, reschedules and triggerer restarts.

A task that logs a workflow's stream (:class:`~dbos_airflow.sensors.streams.DBOSStreamSensor`,
``stream_to_log=``) logs each value once per task instance, not once per try: the next offset to
log is kept in an Airflow **Variable** named ``dbos_stream_offset:<digest>`` (the digest of the
DAG, run, task, map index, workflow, stream key and starting offset; its value says which, in
JSON). XComs cannot carry it: Airflow clears a task's XComs when a try (or a reschedule) starts.

* the worker saves it after each poke that logged something, and at the end;
* a trigger saves it every :data:`CHECKPOINT_SECONDS` while values arrive, when the stream has
  been quiet for 0.5 s after values it has not saved, and when it stops (its event, or a
  cancellation: a triggerer shutting down, a trigger moved);
* a try, a reschedule or a re-created trigger starts from the saved offset (a trigger: the larger
  of its kwargs' offset and the saved one);
* the Variable is deleted when the task succeeds (a cleared task logs the stream again).

So a value is logged **exactly once** across retries, reschedules and a graceful triggerer restart;
after a crash (a worker or triggerer killed, SIGKILL) the values logged since the last save (at
most :data:`CHECKPOINT_SECONDS` of them) are logged again: **at least once** (docs/streams.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

__all__ = ["CHECKPOINT_SECONDS", "StreamCheckpoint"]

CHECKPOINT_SECONDS = 5.0
PREFIX = "dbos_stream_offset:"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamCheckpoint:
    """The saved next offset of one task instance's read of one stream (see the module doc)."""

    name: str
    identity: str  # what the Variable's value says it is about (JSON)

    @classmethod
    def for_task(cls, ti: Any, workflow_id: str, key: str, offset: int) -> StreamCheckpoint:
        """The checkpoint of task instance ``ti`` (``dag_id``, ``run_id``, ``task_id``, ``map_index``)."""
        about = {
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "map_index": getattr(ti, "map_index", -1),
            "workflow_id": workflow_id,
            "key": key,
            "start": offset,
        }
        identity = json.dumps(about, sort_keys=True)
        return cls(PREFIX + hashlib.sha256(identity.encode()).hexdigest()[:40], identity)

    def load(self, default: int) -> int:
        """The saved next offset, or ``default`` (nothing saved, or unreadable)."""
        from airflow.sdk import Variable

        try:
            text = Variable.get(self.name, default=None)
        except Exception:  # noqa: BLE001 - no checkpoint is "from the start offset", never a failure
            log.warning("Could not read DBOS stream checkpoint %s", self.name, exc_info=True)
            return default
        if not text:
            return default
        try:
            saved = json.loads(text)
            return max(default, int(saved["next_offset"]))
        except (ValueError, KeyError, TypeError):
            return default

    def save(self, next_offset: int) -> None:
        """Save the next offset to log (best effort: a failed save means values logged again)."""
        from airflow.sdk import Variable

        value = json.dumps({**json.loads(self.identity), "next_offset": next_offset}, sort_keys=True)
        try:
            Variable.set(self.name, value, description="dbos-airflow: where a task's DBOS stream reading stands")
        except Exception:  # noqa: BLE001 - the wait goes on; a retry may log some values again
            log.warning("Could not save DBOS stream checkpoint %s", self.name, exc_info=True)

    def clear(self) -> None:
        """Forget the checkpoint (the task succeeded)."""
        from airflow.sdk import Variable

        try:
            Variable.delete(self.name)
        except Exception:  # noqa: BLE001 - a left-over checkpoint only skips values already logged
            log.warning("Could not delete DBOS stream checkpoint %s", self.name, exc_info=True)
