"""The documented ``EnqueueOptions`` and their mapping onto dbos' own (``workflow_class_name``, text keys, bounds)."""

from __future__ import annotations

import json
import math
from typing import Any, TypedDict

import dbos
from dbos import WorkflowSerializationFormat

from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.tracing import with_current_context

__all__ = [
    "DUPLICATION_POLICIES",
    "VALID_ENQUEUE_KEYS",
    "AnyEnqueueOptions",
    "EnqueueOptions",
    "qualified_workflow_name",
    "to_dbos_options",
]


class _RequiredEnqueueOptions(TypedDict):
    workflow_name: str
    queue_name: str


class EnqueueOptions(_RequiredEnqueueOptions, total=False):
    """The documented enqueue options plus every optional key of dbos' own ``EnqueueOptions``.

    ``workflow_class_name`` is the documented name for dbos' ``class_name``. Keys not listed
    here (or in the installed dbos version) are rejected instead of silently ignored.
    ``otel_context`` defaults to the caller's current trace (:mod:`dbos_orchestrator.tracing`).
    """

    workflow_class_name: str
    app_version: str
    workflow_id: str
    workflow_id_reuse_policy: str
    workflow_timeout: float
    delay_seconds: float
    deduplication_id: str
    duplication_policy: str
    priority: int
    queue_partition_key: str
    authenticated_user: str
    authenticated_roles: list[str]
    serialization_type: WorkflowSerializationFormat
    class_name: str
    instance_name: str
    attributes: dict[str, Any]
    application_name: str | None
    otel_context: Any


# Documented-style or dbos-style options: both are accepted wherever dbos takes its own.
AnyEnqueueOptions = EnqueueOptions | dbos.EnqueueOptions

_DBOS_KEYS = frozenset(dbos.EnqueueOptions.__required_keys__ | dbos.EnqueueOptions.__optional_keys__)
VALID_ENQUEUE_KEYS = frozenset(_DBOS_KEYS | {"workflow_class_name"})


# Options that dbos stores as text: anything else (e.g. an id rendered natively as an int) is refused.
_TEXT_KEYS = frozenset(
    "workflow_name queue_name workflow_class_name class_name instance_name app_version workflow_id deduplication_id "
    "queue_partition_key authenticated_user application_name".split()
)


def to_dbos_options(options: AnyEnqueueOptions | dict[str, Any]) -> dbos.EnqueueOptions:
    """Validate documented-style options and map them onto dbos' ``EnqueueOptions``."""
    if not isinstance(options, dict):
        raise DBOSOptionsError(f"EnqueueOptions must be a dict, got {type(options).__name__}")
    unknown = sorted(set(options) - VALID_ENQUEUE_KEYS)
    if unknown:
        raise DBOSOptionsError(
            f"unknown EnqueueOptions key(s) {', '.join(map(repr, unknown))}; "
            f"valid keys are: {', '.join(sorted(VALID_ENQUEUE_KEYS))}"
        )
    missing = [k for k in ("workflow_name", "queue_name") if not options.get(k)]
    if missing:
        raise DBOSOptionsError(f"EnqueueOptions is missing required key(s): {', '.join(missing)}")
    mapped: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    for key in sorted(set(mapped) & _TEXT_KEYS):
        if not isinstance(mapped[key], str):
            raise DBOSOptionsError(
                f"EnqueueOptions {key}={mapped[key]!r} must be a string, got {type(mapped[key]).__name__}"
            )
    for key in ("workflow_timeout", "delay_seconds"):
        value = mapped.get(key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if value is not None and (not number or value < 0 or (key == "workflow_timeout" and value == 0)):
            rule = "a positive" if key == "workflow_timeout" else "a non-negative"
            raise DBOSOptionsError(f"EnqueueOptions {key}={value!r} must be {rule} number of seconds")
    _check_identity_and_dedup(mapped)
    class_name = mapped.pop("workflow_class_name", None)
    if class_name is not None:
        if mapped.get("class_name", class_name) != class_name:
            raise DBOSOptionsError(
                f"EnqueueOptions gives workflow_class_name={class_name!r} and "
                f"class_name={mapped['class_name']!r}; give one of them"
            )
        mapped["class_name"] = class_name
    if mapped.get("class_name"):
        mapped["workflow_name"] = qualified_workflow_name(mapped["workflow_name"], mapped["class_name"])
    # The caller's trace (Airflow's or Prefect's task span) becomes the workflow's parent span.
    return with_current_context(mapped)  # type: ignore[return-value]


DUPLICATION_POLICIES = ("reject", "return-existing")


def _check_identity_and_dedup(mapped: dict[str, Any]) -> None:
    """``duplication_policy``, ``authenticated_roles`` and ``attributes``, each named when wrong."""
    policy = mapped.get("duplication_policy")
    if policy is not None and policy not in DUPLICATION_POLICIES:
        raise DBOSOptionsError(
            f"EnqueueOptions duplication_policy={policy!r} must be one of {', '.join(map(repr, DUPLICATION_POLICIES))}"
        )
    if policy == "return-existing" and not mapped.get("deduplication_id"):
        raise DBOSOptionsError(
            "EnqueueOptions duplication_policy='return-existing' needs a deduplication_id (the key to attach by)"
        )
    roles = mapped.get("authenticated_roles")
    if roles is not None and (
        isinstance(roles, str) or not isinstance(roles, (list, tuple)) or not all(isinstance(r, str) for r in roles)
    ):
        raise DBOSOptionsError(f"EnqueueOptions authenticated_roles={roles!r} must be a list of strings")
    if roles is not None:
        mapped["authenticated_roles"] = list(roles)
    attributes = mapped.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, dict) or not all(isinstance(k, str) for k in attributes):
            raise DBOSOptionsError(f"EnqueueOptions attributes={attributes!r} must be a dict with string keys")
        try:
            json.dumps(attributes, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise DBOSOptionsError(f"EnqueueOptions attributes must be JSON values: {exc}") from None


def qualified_workflow_name(workflow_name: str, class_name: str) -> str:
    """The name dbos registers a class's workflow method under: ``Class.method``.

    The documented form gives the method's name and its class separately
    (``workflow_name="monthly", workflow_class_name="Reports"``); dbos registers and looks up
    ``Reports.monthly``. A name already qualified by the class is kept. Not covered: a method
    registered under an explicit ``@DBOS.workflow(name=...)``: give that name and no class.
    """
    prefix = f"{class_name}."
    return workflow_name if workflow_name.startswith(prefix) else prefix + workflow_name
