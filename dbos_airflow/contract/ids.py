"""Ids derived from an Airflow task instance: the same on every try, different per instance.

A derived workflow id (and idempotency key) is what makes a retried, cleared or re-run try
attach to the workflow its first try enqueued instead of enqueuing another.
"""

from __future__ import annotations

from typing import Any, Protocol


class _TaskInstanceLike(Protocol):
    dag_id: str
    run_id: str
    task_id: str
    map_index: int


SEPARATOR = ":"


def task_instance_key(ti: _TaskInstanceLike) -> str:
    """``dag_id:run_id:task_id:map_index`` (no try number)."""
    return SEPARATOR.join((ti.dag_id, ti.run_id, ti.task_id, str(ti.map_index)))


def derived_id(context: Any) -> str:
    """The derived workflow id / idempotency key of the running task instance."""
    return task_instance_key(context["ti"])


def bulk_item_id(base: str, index: int) -> str:
    """The derived id of item ``index`` of a bulk enqueue: ``<task instance key>:<index>``."""
    return f"{base}{SEPARATOR}{index}"
