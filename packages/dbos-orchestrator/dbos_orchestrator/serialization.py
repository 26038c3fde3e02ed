"""Which DBOS serialization writes a value: ``portable`` (DBOS portable JSON, the default) or ``pickle``.

docs/architecture.md, "Serialization": front ends default to portable JSON (any language's DBOS
app reads it; nothing is unpickled); ``pickle`` is an explicit opt-in. Reading is governed by the
connection's ``allow_pickle``, never by this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbos_orchestrator.exceptions import DBOSOptionsError

if TYPE_CHECKING:
    from dbos import WorkflowSerializationFormat

__all__ = ["SERIALIZATIONS", "check_serialization", "choose_format", "serialization_format"]

SERIALIZATIONS = ("portable", "pickle")


def check_serialization(name: str) -> str:
    """``name`` if it is a serialization dbos-airflow supports, else a clear error."""
    if name not in SERIALIZATIONS:
        raise DBOSOptionsError(f"serialization={name!r}; use one of {SERIALIZATIONS}")
    return name


def serialization_format(name: str) -> WorkflowSerializationFormat:
    """``portable`` -> ``WorkflowSerializationFormat.PORTABLE``, ``pickle`` -> ``NATIVE``."""
    from dbos import WorkflowSerializationFormat

    if check_serialization(name) == "pickle":
        return WorkflowSerializationFormat.NATIVE
    return WorkflowSerializationFormat.PORTABLE


def choose_format(per_call: str | None, default: WorkflowSerializationFormat) -> WorkflowSerializationFormat:
    """The per-call ``serialization`` (``portable``/``pickle``) or else the connection's."""
    return serialization_format(per_call) if per_call else default
