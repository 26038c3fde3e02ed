"""Ids derived from Airflow: the same on every try, different per piece of work.

A derived workflow id (and idempotency key) is what makes a retried, cleared or re-run try
attach to the workflow its first try enqueued instead of enqueuing another. Two identities:

* **the task instance** (``id_from="run"``, the default): ``dag_id:run_id:task_id:map_index``;
* **the triggering DBOS completion** (``id_from="completion"``, docs/events.md, "Exactly-once work
  downstream"): ``dag_id:task_id:<completion_key>`` with no run id and no map index, so a
  completion Airflow delivered twice (a second asset event, maybe in another DAG run among other
  events, at another map index) re-attaches to the workflow (and the send is dropped by DBOS)
  instead of doing the work again. ``completion_key`` (``<workflow_id>@<completed_at ms>``) is
  made here too: the trigger puts it in every payload.

DBOS keeps ids in Postgres primary keys (``workflow_status.workflow_uuid``, the message key
``<idempotency key>::<destination>`` of ``notifications``), whose B-tree entries cannot exceed
about 2,700 bytes; a completion-derived id longer than :data:`MAX_ID_BYTES` keeps its readable
``dag_id:task_id:`` and replaces the completion key by its SHA-256.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Protocol

from dbos_orchestrator.exceptions import DBOSOptionsError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ID_FROM",
    "MAX_ID_BYTES",
    "bulk_item_id",
    "bulk_item_prefix",
    "check_id_from",
    "completion_id",
    "completion_key",
    "derived_id",
    "task_instance_key",
    "triggering_completions",
    "work_id",
]


class _TaskInstanceLike(Protocol):
    dag_id: str
    run_id: str
    task_id: str
    map_index: int


SEPARATOR = ":"
ID_FROM = ("run", "completion")
MAX_ID_BYTES = 1024


def task_instance_key(ti: _TaskInstanceLike) -> str:
    """``dag_id:run_id:task_id:map_index`` (no try number)."""
    return SEPARATOR.join((ti.dag_id, ti.run_id, ti.task_id, str(ti.map_index)))


def derived_id(context: Any) -> str:
    """The derived workflow id / idempotency key of the running task instance."""
    return task_instance_key(context["ti"])


def bulk_item_id(base: str, index: int) -> str:
    """The derived id of item ``index`` of a bulk enqueue: ``<task instance key>:<index>``."""
    return f"{bulk_item_prefix(base)}{index}"


def bulk_item_prefix(base: str) -> str:
    """What every derived id of a bulk enqueue starts with, its index following: ``<task instance key>:``."""
    return f"{base}{SEPARATOR}"


# -- the identity of a DBOS completion, and of the work done for it downstream --------------


def completion_key(workflow_id: str, completed_at: int | None) -> str:
    """A completion's stable identity: ``<workflow_id>@<completed_at epoch ms>`` (docs/events.md)."""
    return f"{workflow_id}@{completed_at}"


def completion_id(dag_id: str, task_id: str, key: str) -> str:
    """The id of task ``task_id``'s work for the completion ``key``: ``dag_id:task_id:<key>``.

    No run id and no map index: a duplicated completion lands in another run, or at another
    index, and must get the same id. Longer than :data:`MAX_ID_BYTES`: the key's SHA-256.
    """
    derived = SEPARATOR.join((dag_id, task_id, key))
    if len(derived.encode()) <= MAX_ID_BYTES:
        return derived
    return SEPARATOR.join((dag_id, task_id, "sha256", hashlib.sha256(key.encode()).hexdigest()))


def _payload(event: Any) -> dict[str, Any] | None:
    extra = getattr(event, "extra", None)
    if extra is None and isinstance(event, dict):
        extra = event.get("extra")
    payload = extra.get("payload") if isinstance(extra, dict) else None
    if isinstance(payload, dict) and isinstance(payload.get("completion_key"), str) and payload["completion_key"]:
        return payload
    return None


def triggering_completions(triggering_asset_events: Mapping[Any, Any] | None) -> list[dict[str, Any]]:
    """The DBOS completion payloads among a DAG run's ``triggering_asset_events``, each once.

    In the order Airflow lists them; a completion delivered twice into one run (or listed under
    an asset and an alias) counts once, by ``completion_key``. Asset events whose ``extra`` carries
    no DBOS completion payload (other assets, a manual event without one) are skipped; a manual
    event that carries one (a replay) counts as that completion.
    """
    seen: dict[str, dict[str, Any]] = {}
    for events in (triggering_asset_events or {}).values():
        for event in events:
            payload = _payload(event)
            if payload is not None:
                seen.setdefault(payload["completion_key"], payload)
    return list(seen.values())


def check_id_from(id_from: str) -> str:
    """``id_from`` if it is one of :data:`ID_FROM`, else :class:`DBOSOptionsError`."""
    if id_from not in ID_FROM:
        raise DBOSOptionsError(f"id_from={id_from!r} must be one of {list(ID_FROM)}")
    return id_from


def work_id(context: Any, *, id_from: str, key: str | None = None, what: str = "workflow id") -> str:
    """The derived id of the running task instance's work by ``id_from`` (:data:`ID_FROM`).

    ``"completion"``: :func:`completion_id` of ``key``, which must be one of the completions
    that triggered the run; without ``key`` the run must have been triggered by exactly one.
    Raises :class:`DBOSOptionsError` naming what is wrong (the run was not triggered by DBOS
    completion events, several completions and no ``key``, a ``key`` not among them).

    :param what: what the id is for, in the error (``workflow id``, ``idempotency key``).
    """
    if check_id_from(id_from) == "run":
        return derived_id(context)
    ti = context["ti"]
    where = f"DAG run {ti.run_id!r} of {ti.dag_id!r}"
    completions = triggering_completions(context.get("triggering_asset_events"))
    keys = [c["completion_key"] for c in completions]
    if not keys:
        raise DBOSOptionsError(
            f"id_from='completion' derives the {what} from the DBOS completion that triggered the run, but "
            f"{where} was not triggered by DBOS completion events: its triggering_asset_events hold no "
            "payload with a completion_key (a run triggered by hand or on a schedule has none); "
            "use id_from='run' or give the id explicitly"
        )
    if key is None:
        if len(keys) > 1:
            raise DBOSOptionsError(
                f"id_from='completion': {where} was triggered by {len(keys)} DBOS completions "
                f"({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}); say which one this task instance "
                "works for with completion_key (map the task over triggering_completions(...))"
            )
        (key,) = keys
    elif key not in keys:
        raise DBOSOptionsError(
            f"completion_key={key!r} is not one of the {len(keys)} DBOS completion(s) that triggered {where}: "
            f"{', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"
        )
    return completion_id(ti.dag_id, ti.task_id, key)
