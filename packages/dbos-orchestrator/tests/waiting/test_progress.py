"""The progress of the shared waiter's pending waits (dbos_orchestrator/waiting/progress.py): statuses the
probe saw, a terminal one forgotten when the workflow shows up running again, and the refresh, which keeps
only the workflows still waited for. Running workflows' statuses read by the refresh on Postgres, and the
last steps, are tested with a worker in tests/test_waiter.py (``waiter.progress``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbos_orchestrator.status import DBOSWorkflowStatus
from dbos_orchestrator.waiting.progress import PROGRESS_REFRESH_SECONDS, WaitProgress

if TYPE_CHECKING:
    from pathlib import Path


def test_statuses_seen_and_a_terminal_one_forgotten_when_running_again() -> None:
    progress = WaitProgress()
    assert progress.get("a") == (None, None)
    progress.saw("a", DBOSWorkflowStatus.PENDING)
    progress.saw("b", DBOSWorkflowStatus.SUCCESS)
    assert progress.running("a") is DBOSWorkflowStatus.PENDING
    assert progress.get("a") == (DBOSWorkflowStatus.PENDING, None)
    # b ended once and the probe no longer returns it: resumed or forked since, its status unknown
    assert progress.running("b") is None
    assert progress.get("b") == (None, None)


def test_refresh_is_due_every_period_and_forgets_who_nobody_waits_for(tmp_path: Path) -> None:
    from dbos import DBOS
    from dbos_orchestrator.client import DBOSClient

    url = f"sqlite:///{tmp_path / 'sys.sqlite'}"
    DBOS.migrate(url)
    progress = WaitProgress()
    assert progress.due()
    progress.saw("kept", DBOSWorkflowStatus.ENQUEUED)
    progress.saw("gone", DBOSWorkflowStatus.ENQUEUED)
    client = DBOSClient(system_database_url=url, retry_connection_errors=False)
    try:
        with client.system_database_engine.connect() as conn:
            progress.refresh(conn, ["kept"])
            assert progress.statements == 1  # SQLite: the last steps only
            assert not progress.due(), f"due again before {PROGRESS_REFRESH_SECONDS} s"
            assert progress.get("kept") == (DBOSWorkflowStatus.ENQUEUED, None)
            assert progress.get("gone") == (None, None)
            progress.refresh(conn, [])
            assert progress.statements == 1
            assert progress.get("kept") == (None, None)
    finally:
        client.destroy()
