"""Which Airflow task instance owns a DBOS workflow: a record DBOS itself keeps.

Every workflow the provider enqueues (enqueue and bulk operators) or forks (fork operator)
carries, in DBOS' own ``attributes`` column, the task instance that started it::

    {"airflow": {"dag_id": ..., "run_id": ..., "task_id": ..., "map_index": ..., "conn_id": ...}}

It is written in the enqueue transaction (a fork's right after the fork), so a workflow never
claims an owner it was not started by. A bulk batch of derived ids records it once, on its first
item, with the batch's extent (``"batch": {"prefix", "count", "created_at"}``, see
:mod:`dbos_orchestrator.store.batch_record`); the other items carry none and are owned as members
of that batch (:func:`batch_of`, read by ``plugin/records.py``). DBOS copies a workflow's attributes to its forks; a
child workflow started inside a DBOS app carries none and is owned through its parent. The UI
trusts this record, never XCom alone (XCom rows can be rewritten through Airflow's REST API):
see docs/ui.md, "Permissions". Airflow-free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dbos_orchestrator.store.batch_record import BatchExtent

__all__ = ["OWNER_KEY", "Owner", "batch_of", "has_record", "owner_attributes", "owner_of", "record_owner", "with_owner"]

OWNER_KEY = "airflow"
MAX_MAP_INDEX = 2**31 - 1  # Airflow's map_index column is a 32-bit integer


class _TaskInstanceLike(Protocol):
    @property
    def dag_id(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def task_id(self) -> str: ...
    @property
    def map_index(self) -> int | None: ...


@dataclass(frozen=True)
class Owner:
    """The task instance that started a workflow, and the connection it started it through."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    conn_id: str

    def as_attributes(self) -> dict[str, Any]:
        """The ``attributes`` dict that records this owner."""
        return {
            OWNER_KEY: {
                "dag_id": self.dag_id,
                "run_id": self.run_id,
                "task_id": self.task_id,
                "map_index": self.map_index,
                "conn_id": self.conn_id,
            }
        }

    def is_task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> bool:
        return (self.dag_id, self.run_id, self.task_id, self.map_index) == (dag_id, run_id, task_id, map_index)

    def task_instance(self) -> tuple[str, str, str, int]:
        return self.dag_id, self.run_id, self.task_id, self.map_index


def owner_attributes(ti: _TaskInstanceLike, conn_id: str) -> dict[str, Any]:
    """The owner record of a workflow the task instance ``ti`` starts through ``conn_id``."""
    return Owner(
        str(ti.dag_id), str(ti.run_id), str(ti.task_id), -1 if ti.map_index is None else int(ti.map_index), str(conn_id)
    ).as_attributes()


def with_owner(options: Mapping[str, Any], ti: _TaskInstanceLike, conn_id: str) -> Any:
    """Enqueue ``options`` with the owner record merged into their ``attributes``.

    The record replaces any ``airflow`` key a caller put there: a task cannot claim another owner.
    """
    attributes = {**(options.get("attributes") or {}), **owner_attributes(ti, conn_id)}
    return {**options, "attributes": attributes}


def record_owner(hook: Any, workflow_id: str, ti: _TaskInstanceLike, conn_id: str) -> None:
    """Record ``ti`` as the owner of a workflow that exists (a fork: DBOS copied the original's
    attributes to it); the rest of its attributes stay."""
    hook.get_client().update_workflow_attributes(workflow_id, owner_attributes(ti, conn_id), merge=True)


def owner_of(attributes: Any) -> Owner | None:
    """The owner recorded in a workflow's ``attributes``, or None (none, or not well formed)."""
    if not isinstance(attributes, Mapping):
        return None
    record = attributes.get(OWNER_KEY)
    if not isinstance(record, Mapping):
        return None
    texts = [record.get(k) for k in ("dag_id", "run_id", "task_id", "conn_id")]
    map_index = record.get("map_index")
    if not all(isinstance(t, str) and t for t in texts):
        return None
    if isinstance(map_index, float) and math.isfinite(map_index) and map_index.is_integer():
        map_index = int(map_index)
    if type(map_index) is not int or not -1 <= map_index <= MAX_MAP_INDEX:
        return None
    dag_id, run_id, task_id, conn_id = texts
    return Owner(str(dag_id), str(run_id), str(task_id), map_index, str(conn_id))


def has_record(attributes: Any) -> bool:
    """Whether ``attributes`` hold anything under the owner key (a record of its own, well formed or not)."""
    return isinstance(attributes, Mapping) and OWNER_KEY in attributes


def batch_of(workflow_id: str, attributes: Any) -> tuple[Owner, BatchExtent] | None:
    """The owner and the batch extent an anchor's record claims, or None.

    None unless the record is a well-formed owner record with a well-formed extent, the extent's
    prefix lies in the owner's own DAG's ids (``<dag_id>:``: a DAG id has no colon) and
    ``workflow_id`` (the anchor's) is one of the batch's ids.
    """
    from dbos_orchestrator.store.batch_record import extent_of

    owner = owner_of(attributes)
    if owner is None:
        return None
    extent = extent_of(attributes[OWNER_KEY])
    if extent is None or not extent.prefix.startswith(owner.dag_id + ":") or extent.index_of(workflow_id) is None:
        return None
    return owner, extent
