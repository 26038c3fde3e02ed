"""What the shared waiter knows of its pending waits while they wait: the lines of their progress.

A waiting task logs its workflow's status and last recorded step every ~30 s. The waiter's probe
brings back only what ended (Postgres; bench P11), so the statuses of running workflows and the
last steps of all pending waits are read here, in two statements on the polling connection every
:data:`PROGRESS_REFRESH_SECONDS`; statuses the probe sees are recorded as they come. Everything
here runs on the polling thread except :meth:`WaitProgress.get` (one dict read each).
Nothing is decoded. No Airflow import.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from dbos_orchestrator.status import DBOSWorkflowStatus
from dbos_orchestrator.waiting.probe import wait_probe_statement

if TYPE_CHECKING:
    from collections.abc import Collection

    import sqlalchemy as sa

__all__ = ["PROGRESS_REFRESH_SECONDS", "WaitProgress"]

PROGRESS_REFRESH_SECONDS = 10.0


class WaitProgress:
    """The last status and step seen of each pending wait's workflow."""

    def __init__(self) -> None:
        self._statuses: dict[str, DBOSWorkflowStatus | None] = {}
        self._last_steps: dict[str, tuple[int, str]] = {}
        self._refreshed_at = 0.0
        self.statements = 0  # run by refresh(), each counted once it ran

    def get(self, workflow_id: str) -> tuple[DBOSWorkflowStatus | None, tuple[int, str] | None]:
        """The status (None: not seen yet, or no such workflow) and last recorded step of a pending wait."""
        return self._statuses.get(workflow_id), self._last_steps.get(workflow_id)

    def saw(self, workflow_id: str, status: DBOSWorkflowStatus | None) -> None:
        """The probe returned the workflow with ``status`` (None: it does not exist)."""
        self._statuses[workflow_id] = status

    def running(self, workflow_id: str) -> DBOSWorkflowStatus | None:
        """The last known status of a workflow the Postgres probe did not return (it exists and has not
        ended); a terminal one is forgotten: the workflow ended once and was resumed or forked since."""
        known = self._statuses.get(workflow_id)
        if known is not None and known.is_terminal():
            del self._statuses[workflow_id]
            return None
        return known

    def due(self) -> bool:
        return time.monotonic() - self._refreshed_at >= PROGRESS_REFRESH_SECONDS

    def refresh(self, conn: sa.Connection, workflow_ids: Collection[str]) -> None:
        """Read the last step of every pending wait (and on Postgres the statuses of running ones) on
        ``conn``; forget the workflows nobody waits for any more."""
        from dbos_orchestrator.store.values import ValueReader

        ids = sorted(set(workflow_ids))
        self._refreshed_at = time.monotonic()
        if ids:
            rows = conn.execute(ValueReader.last_steps_statement(ids)).all()
            self.statements += 1
            self._last_steps = {str(wid): (int(fid), str(name)) for wid, fid, name in rows}
            if conn.dialect.name == "postgresql":  # the probe returns only ended ones: the others' statuses here
                found = conn.execute(wait_probe_statement(ids, [], postgres=True)).all()
                self.statements += 1
                self._statuses.update({str(wid): DBOSWorkflowStatus.parse(text) for wid, text, _ in found})
        else:
            self._last_steps = {}
        keep = set(ids)
        self._statuses = {k: v for k, v in self._statuses.items() if k in keep}
