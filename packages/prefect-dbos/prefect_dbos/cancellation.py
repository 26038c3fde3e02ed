"""Cancelling a flow run's DBOS workflows when the flow run is cancelled (README, "Cancellation").

Prefect has no task-level cancellation hook; cancellation is of a flow run, and its
``on_cancellation`` hooks run once with ``(flow, flow_run, state)``. Every derived workflow id
starts with ``prefect-<flow run id>-``, so the hook cancels the flow run's workflows by that
prefix, including those of its subflows. A crash runs no hook: nothing is cancelled, and a
retry re-attaches.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_dbos import operations

if TYPE_CHECKING:
    from collections.abc import Callable

    from prefect_dbos.database import DBOSSystemDatabase

log = logging.getLogger("prefect_dbos")


def cancel_dbos_workflows(
    database: DBOSSystemDatabase | str | None = None,
) -> Callable[[Any, Any, Any], None]:
    """A hook for ``@flow(on_cancellation=[...])`` cancelling the flow run's active workflows.

    :param database: the system database (a block or a saved block's name); None: the
        databases this process's tasks of the flow run enqueued on (the hook then runs in the
        flow's process, as it does for a run Prefect cancels through its runner or worker).
    """

    def hook(flow: Any, flow_run: Any, state: Any) -> None:
        run_id = str(flow_run.id)
        for db in _databases(database, run_id):
            cancelled = run_coro_as_sync(operations.cancel_prefix(db, run_id, logger=log)) or []
            log.info("Flow run %s cancelled: cancelled %s DBOS workflow(s) %s", run_id, len(cancelled), cancelled)

    hook.__name__ = "cancel_dbos_workflows"
    return hook


def _databases(database: DBOSSystemDatabase | str | None, flow_run_id: str) -> list[DBOSSystemDatabase]:
    from prefect_dbos.database import DBOSSystemDatabase

    if database is None:
        return operations.databases_of(flow_run_id)
    if isinstance(database, str):
        loaded = DBOSSystemDatabase.load(database)
        return [loaded]  # type: ignore[list-item]
    return [database]
