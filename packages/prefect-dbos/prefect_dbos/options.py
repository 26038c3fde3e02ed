"""The options of an enqueue task, checked before anything is written: arguments, the core's enqueue
options (an unknown one is an error naming it) and the queue/version preflight."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.operations.preflight import check_on_unknown

from prefect_dbos.events import run_attributes

if TYPE_CHECKING:
    from prefect_dbos.database import DBOSSystemDatabase

ENQUEUE_OPTION_NAMES = (
    "app_version",
    "priority",
    "workflow_timeout",
    "delay_seconds",
    "queue_partition_key",
    "deduplication_id",
    "duplication_policy",
    "authenticated_user",
    "authenticated_roles",
    "attributes",
    "on_unknown_queue",
    "on_unknown_version",
)
# Options that say how to check the call, not what to enqueue (dbos_orchestrator.operations.preflight).
CHECK_OPTION_NAMES = ("on_unknown_queue", "on_unknown_version")


def check_arguments(args: Any, kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
    """``workflow_args`` as a list and ``workflow_kwargs`` as a dict, or an error naming the parameter."""
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise DBOSOptionsError(f"workflow_args must be a list of positional arguments, got {type(args).__name__}")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise DBOSOptionsError(f"workflow_kwargs must be a dict with string keys, got {type(kwargs).__name__}")
    return list(args), dict(kwargs)


def enqueue_options(
    database: DBOSSystemDatabase,
    queue_name: str,
    workflow_name: str,
    workflow_class_name: str | None,
    options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The core's enqueue options of a call; an unknown option or empty name is an error naming it."""
    for name, value in (("queue_name", queue_name), ("workflow_name", workflow_name)):
        if not isinstance(value, str) or not value.strip():
            raise DBOSOptionsError(f"{name} must be a non-empty string, got {value!r}")
    extra = dict(options or {})
    unknown = sorted(set(extra) - set(ENQUEUE_OPTION_NAMES))
    if unknown:
        raise DBOSOptionsError(
            f"unknown enqueue option(s) {', '.join(unknown)}; valid: {', '.join(ENQUEUE_OPTION_NAMES)}"
        )
    opts: dict[str, Any] = {
        "workflow_name": workflow_name,
        "queue_name": queue_name,
        "serialization_type": database.serialization_type,
        **{k: v for k, v in extra.items() if v is not None},
    }
    if workflow_class_name:
        opts["workflow_class_name"] = workflow_class_name
    for name in CHECK_OPTION_NAMES:
        check_on_unknown(name, opts.setdefault(name, "warn"))
    return opts


def check_target(database: DBOSSystemDatabase, opts: dict[str, Any], logger: Any) -> Callable[[], Any]:
    """Pops the check options off ``opts``; returns the check to run before anything is written: a queue
    or ``app_version`` no worker registered is warned about in the task log, or refused with ``"fail"``."""
    modes = {name: opts.pop(name) for name in CHECK_OPTION_NAMES}

    def check() -> Any:
        return database.service(log=logger).check_enqueue_target(opts["queue_name"], opts.get("app_version"), **modes)

    return check


def with_prefect_attributes(opts: dict[str, Any]) -> None:
    """The user's ``attributes`` merged with the Prefect runs' record (the ``prefect.*`` keys: not a user's)."""
    opts["attributes"] = {**(opts.get("attributes") or {}), **run_attributes()}
