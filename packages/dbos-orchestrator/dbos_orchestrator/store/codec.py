"""The codec of stored DBOS values, safely: the one place where a stored value is decoded.

DBOS applications pickle their workflows' inputs, outputs, errors, events and messages by
default (rows tagged ``py_pickle``), and ``dbos.DBOSClient`` unpickles every such row. Loading a
pickle runs code chosen by whoever wrote the row, and Airflow processes hold the secrets of
every Airflow connection. So inside Airflow every stored value goes through this module:

* ``portable_json`` rows are decoded with DBOS' own portable serializer;
* ``py_pickle`` rows (and rows with no tag, which dbos reads as pickle) and unknown tags are
  **refused** with :class:`~dbos_orchestrator.exceptions.DBOSUnsafeValueError`, naming the workflow,
  what was read and the tag, unless the connection opts in (``allow_pickle``);
* pickled **errors** are still described without loading them (their opcodes are read
  statically), so a failed workflow fails its task with its own message; so are errors a
  TypeScript DBOS application stored in its own SuperJSON format (read as plain JSON).

This module decodes text it is given; the reads are :mod:`dbos_orchestrator.store.values`
(values) and :mod:`dbos_orchestrator.store.steps` (steps). No Airflow import.
"""

from __future__ import annotations

import base64
import pickle
import pickletools
from dataclasses import dataclass
from typing import Any

from dbos import DBOSPortableJSONSerializer

from dbos_orchestrator.exceptions import DBOSUnsafeValueError
from dbos_orchestrator.store.superjson import SUPERJSON, SUPERJSON_HINT, describe_superjson_error

__all__ = [
    "OPT_IN_HINT",
    "PICKLE",
    "PORTABLE",
    "Undecoded",
    "decode_value",
    "describe_pickled_error_statically",
    "describe_stored_error",
    "display_value",
]

PORTABLE = "portable_json"
PICKLE = "py_pickle"
# How to opt in: each front end passes its own words (Airflow the connection extra, Prefect the block field).
OPT_IN_HINT = "set allow_pickle where this system database is configured to decode pickled values (runs their code)"

_PORTABLE = DBOSPortableJSONSerializer()


@dataclass(frozen=True)
class Undecoded:
    """Shown instead of a value that was not decoded (e.g. ``pickled, not decoded``)."""

    serialization: str | None
    reason: str

    def __str__(self) -> str:
        return self.reason


def _tag(serialization: str | None) -> str:
    return serialization or PICKLE  # dbos reads an untagged row with its default serializer: pickle


def decode_value(
    text: str | None, serialization: str | None, *, allow_pickle: bool, workflow_id: str, what: str, hint: str = ""
) -> Any:
    """The Python value of one stored DBOS value, or :class:`DBOSUnsafeValueError`.

    :param text: the stored text (None stays None).
    :param serialization: the row's ``serialization`` tag.
    :param allow_pickle: the connection's opt-in to loading ``py_pickle`` rows.
    :param workflow_id: named in the error.
    :param what: what is being read, named in the error (``output``, ``event 'k'``, ``input``).
    :param hint: how to opt in to pickles, in the front end's words (default :data:`OPT_IN_HINT`).
    """
    if text is None:
        return None
    tag = _tag(serialization)
    if tag == PORTABLE:
        try:
            return _PORTABLE.deserialize(text)
        except ValueError as exc:  # a corrupt or forged row: say which one
            raise DBOSUnsafeValueError(
                f"cannot decode the {what} of DBOS workflow {workflow_id}: it is stored as {PORTABLE!r} "
                f"but is not valid JSON ({exc})"
            ) from None
    if tag == PICKLE and allow_pickle:
        return pickle.loads(base64.b64decode(text))  # noqa: S301 - the connection opted in
    raise DBOSUnsafeValueError(
        f"refusing to decode the {what} of DBOS workflow {workflow_id}: it is stored as {tag!r}, "
        + (
            f"and only {PORTABLE!r} is decoded by default; {hint or OPT_IN_HINT}"
            if tag == PICKLE
            else f"which cannot be decoded here (only {PORTABLE!r} and, when allowed, {PICKLE!r})"
            + (SUPERJSON_HINT if tag == SUPERJSON else "")
        )
    )


def display_value(
    text: str | None, serialization: str | None, *, allow_pickle: bool, workflow_id: str, what: str
) -> Any:
    """Like :func:`decode_value`, but a refused value becomes an :class:`Undecoded` marker."""
    try:
        return decode_value(text, serialization, allow_pickle=allow_pickle, workflow_id=workflow_id, what=what)
    except DBOSUnsafeValueError:
        tag = _tag(serialization)
        return Undecoded(tag, "pickled, not decoded" if tag == PICKLE else f"stored as {tag!r}, not decoded")
    except (ValueError, TypeError, pickle.UnpicklingError, AttributeError, ImportError) as exc:
        return Undecoded(serialization, f"could not be decoded: {type(exc).__name__}: {exc}")


def describe_stored_error(
    text: str | None, serialization: str | None, *, allow_pickle: bool, workflow_id: str
) -> str | None:
    """``Name: message`` of a workflow's or step's stored error, never loading a refused pickle."""
    if text is None:
        return None
    tag = _tag(serialization)
    described = None if tag == PORTABLE else describe_superjson_error(text)  # also under a py_pickle tag
    if described is not None:
        return described
    if tag == PORTABLE:
        try:
            data = _PORTABLE.deserialize(text)
        except ValueError:
            return f"an error stored as {PORTABLE!r} that is not valid JSON"
        if isinstance(data, dict):
            name, message = data.get("name") or "Error", data.get("message") or ""
            return f"{name}: {message}" if message else str(name)
        return str(data)
    if tag == PICKLE and allow_pickle:
        try:
            error = pickle.loads(base64.b64decode(text))  # noqa: S301 - the connection opted in
        except Exception:  # noqa: BLE001 - e.g. the class lives only in the DBOS application
            return describe_pickled_error_statically(text) or "an error that could not be decoded"
        return f"{type(error).__name__}: {error}"
    return describe_pickled_error_statically(text) if tag == PICKLE else f"an error stored as {tag!r}"


def describe_pickled_error_statically(text: str) -> str | None:
    """``Name: message`` read from a pickled exception's opcodes; executes nothing.

    The first global the pickle refers to is the exception's class (``GLOBAL``/``INST`` carry
    ``"module name"``; protocol 4+ pushes module and name as strings before ``STACK_GLOBAL``);
    the strings that follow are its arguments.
    """
    try:
        ops = list(pickletools.genops(base64.b64decode(text, validate=True)))
    except Exception:  # noqa: BLE001 - hostile or corrupt bytes: nothing to describe
        return None
    name: str | None = None
    strings: list[str] = []
    for opcode, arg, _ in ops:
        if name is None and opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
            name, strings = arg.split(" ")[-1], []
        elif name is None and opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
            name, strings = strings[-1], []
        elif isinstance(arg, str):
            strings.append(arg)
    if name is None:
        return None
    return f"{name}: {' '.join(strings)}" if strings else name
