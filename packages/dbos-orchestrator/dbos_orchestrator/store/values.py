"""Stored DBOS values -> Python values, safely: the one place where dbos-airflow decodes.

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

Rows are read through dbos' own table definitions (``dbos._schemas.system_database``) on the
client's engine; nothing here writes. No Airflow import: a second front end can reuse it.
"""

from __future__ import annotations

import base64
import pickle
import pickletools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from dbos import DBOSPortableJSONSerializer

from dbos_orchestrator.exceptions import DBOSUnsafeValueError
from dbos_orchestrator.store.superjson import SUPERJSON, SUPERJSON_HINT, describe_superjson_error

if TYPE_CHECKING:
    from dbos_orchestrator.client import DBOSClient

__all__ = [
    "PICKLE",
    "PORTABLE",
    "StoredStep",
    "Undecoded",
    "ValueReader",
    "decode_value",
    "describe_stored_error",
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


class ValueReader:
    """Reads stored values of one DBOS system database through dbos' table definitions.

    :param client: the client whose engine (and schema mapping) to read with.
    :param allow_pickle: the connection's opt-in to loading ``py_pickle`` rows.
    :param pickle_hint: how to opt in, in the front end's words (ends the refusal of a pickle).
    """

    def __init__(self, client: DBOSClient, *, allow_pickle: bool = False, pickle_hint: str = "") -> None:
        self.client = client
        self.allow_pickle = allow_pickle
        self.pickle_hint = pickle_hint

    def _decode(self, text: str | None, tag: str | None, workflow_id: str, what: str) -> Any:
        kw: dict[str, Any] = {"allow_pickle": self.allow_pickle, "hint": self.pickle_hint}
        return decode_value(text, tag, workflow_id=workflow_id, what=what, **kw)

    def _rows(self, statement: sa.Executable) -> list[tuple[Any, ...]]:
        with self.client.system_database_engine.connect() as conn:
            return [tuple(row) for row in conn.execute(statement)]

    def _output_row(self, workflow_id: str) -> tuple[str | None, str | None, str | None] | None:
        """``(stored output, stored error, serialization)`` of the workflow, or None if it does not exist."""
        from dbos._schemas.system_database import SystemSchema

        ws, wo = SystemSchema.workflow_status, SystemSchema.workflow_output
        rows = self._rows(
            sa.select(
                sa.func.coalesce(wo.c.output, ws.c.output),
                sa.func.coalesce(wo.c.error, ws.c.error),
                ws.c.serialization,
            )
            .select_from(ws.outerjoin(wo, wo.c.workflow_uuid == ws.c.workflow_uuid))
            .where(ws.c.workflow_uuid == workflow_id)
        )
        return rows[0] if rows else None

    def output(self, workflow_id: str) -> Any:
        """The workflow's decoded output (None if it has none or does not exist); its error is not read."""
        row = self._output_row(workflow_id)
        if row is None:
            return None
        output, _, tag = row
        return self._decode(output, tag, workflow_id, "output")

    def output_and_error(self, workflow_id: str) -> tuple[Any, str | None]:
        """The workflow's decoded output and its error message (``Name: message``)."""
        row = self._output_row(workflow_id)
        if row is None:
            return None, None
        output, error, tag = row
        allow = self.allow_pickle
        return (
            self._decode(output, tag, workflow_id, "output"),
            describe_stored_error(error, tag, allow_pickle=allow, workflow_id=workflow_id),
        )

    def error_message(self, workflow_id: str) -> str | None:
        """The workflow's stored error as ``Name: message`` (a pickled error is never loaded unless allowed)."""
        row = self._output_row(workflow_id)
        if row is None:
            return None
        _, error, tag = row
        return describe_stored_error(error, tag, allow_pickle=self.allow_pickle, workflow_id=workflow_id)

    def event(self, workflow_id: str, key: str) -> tuple[bool, Any]:
        """``(published, value)`` of event ``key``; the value is decoded (or refused)."""
        from dbos._schemas.system_database import SystemSchema

        ev = SystemSchema.workflow_events
        rows = self._rows(
            sa.select(ev.c.value, ev.c.serialization).where(ev.c.workflow_uuid == workflow_id, ev.c.key == key)
        )
        if not rows:
            return False, None
        value, tag = rows[0]
        return True, self._decode(value, tag, workflow_id, f"event {key!r}")

    def step_outcomes(self, workflow_id: str) -> list[tuple[int, bool]]:
        """``(step number, succeeded)`` of every recorded step, in order; no value is decoded."""
        from dbos._schemas.system_database import SystemSchema

        steps = SystemSchema.operation_outputs
        rows = self._rows(
            sa.select(steps.c.function_id, steps.c.error.is_(None))
            .where(steps.c.workflow_uuid == workflow_id)
            .order_by(steps.c.function_id)
        )
        return [(int(step), bool(ok)) for step, ok in rows]

    # -- what the workflow view shows (read-only; values through display_value) ----------

    def inputs(self, workflow_id: str) -> Any:
        """The workflow's decoded inputs (``{"args": [...], "kwargs": {...}}`` when decodable).

        A refused or undecodable value comes back as :class:`Undecoded`; a missing one as None.
        """
        from dbos._schemas.system_database import SystemSchema

        ws, wi = SystemSchema.workflow_status, SystemSchema.workflow_input
        rows = self._rows(
            sa.select(sa.func.coalesce(wi.c.inputs, ws.c.inputs), ws.c.serialization)
            .select_from(ws.outerjoin(wi, wi.c.workflow_uuid == ws.c.workflow_uuid))
            .where(ws.c.workflow_uuid == workflow_id)
        )
        if not rows:
            return None
        text, tag = tuple(rows[0])
        value = display_value(text, tag, allow_pickle=self.allow_pickle, workflow_id=workflow_id, what="input")
        if isinstance(value, dict) and ("positionalArgs" in value or "namedArgs" in value):
            return {"args": value.get("positionalArgs") or [], "kwargs": value.get("namedArgs") or {}}
        if isinstance(value, dict) and "args" in value:  # a pickled {"args": tuple, "kwargs": dict}
            return {"args": list(value.get("args") or ()), "kwargs": value.get("kwargs") or {}}
        return value

    def output_and_error_for_display(self, workflow_id: str) -> tuple[Any, str | None]:
        """Like :meth:`output_and_error`, but a refused output is an :class:`Undecoded` marker."""
        row = self._output_row(workflow_id)
        if row is None:
            return None, None
        output, error, tag = row
        kw: dict[str, Any] = {"allow_pickle": self.allow_pickle, "workflow_id": workflow_id}
        return display_value(output, tag, what="output", **kw), describe_stored_error(error, tag, **kw)

    def events(self, workflow_id: str) -> dict[str, Any]:
        """Every event the workflow published: ``{key: decoded value or Undecoded}``, by key."""
        from dbos._schemas.system_database import SystemSchema

        ev = SystemSchema.workflow_events
        rows = self._rows(
            sa.select(ev.c.key, ev.c.value, ev.c.serialization)
            .where(ev.c.workflow_uuid == workflow_id)
            .order_by(ev.c.key)
        )
        return {
            key: display_value(
                value, tag, allow_pickle=self.allow_pickle, workflow_id=workflow_id, what=f"event {key!r}"
            )
            for key, value, tag in (tuple(r) for r in rows)
        }

    def steps(self, workflow_id: str, *, limit: int | None = None) -> list[StoredStep]:
        """The workflow's recorded steps in order (``operation_outputs``), values for display."""
        from dbos._schemas.system_database import SystemSchema

        oo = SystemSchema.operation_outputs
        query = (
            sa.select(
                oo.c.function_id,
                oo.c.function_name,
                oo.c.output,
                oo.c.error,
                oo.c.child_workflow_id,
                oo.c.started_at_epoch_ms,
                oo.c.completed_at_epoch_ms,
                oo.c.serialization,
            )
            .where(oo.c.workflow_uuid == workflow_id)
            .order_by(oo.c.function_id)
        )
        if limit is not None:
            query = query.limit(limit)
        kw: dict[str, Any] = {"allow_pickle": self.allow_pickle, "workflow_id": workflow_id}
        return [
            StoredStep(
                number=fid,
                name=name,
                output=display_value(out, tag, what=f"output of step {fid}", **kw),
                error=describe_stored_error(err, tag, **kw),
                child_workflow_id=child,
                started_at_ms=started,
                completed_at_ms=completed,
            )
            for fid, name, out, err, child, started, completed, tag in (tuple(r) for r in self._rows(query))
        ]

    @staticmethod
    def last_steps_statement(workflow_ids: list[str]) -> sa.Select[Any]:
        """The statement of :meth:`last_steps` (to run it on a connection of one's own)."""
        from dbos._schemas.system_database import SystemSchema

        steps = SystemSchema.operation_outputs
        last = (
            sa.select(steps.c.workflow_uuid.label("wid"), sa.func.max(steps.c.function_id).label("fid"))
            .where(steps.c.workflow_uuid.in_(sorted(set(workflow_ids))))
            .group_by(steps.c.workflow_uuid)
            .subquery()
        )
        return sa.select(steps.c.workflow_uuid, steps.c.function_id, steps.c.function_name).join(
            last, sa.and_(steps.c.workflow_uuid == last.c.wid, steps.c.function_id == last.c.fid)
        )

    def last_steps(self, workflow_ids: list[str]) -> dict[str, tuple[int, str]]:
        """``{workflow_id: (step number, function name)}`` of each workflow's last recorded step.

        One statement for all ids; workflows that recorded no step are absent. Nothing is decoded.
        """
        if not workflow_ids:
            return {}
        rows = self._rows(self.last_steps_statement(workflow_ids))
        return {str(wid): (int(fid), str(name)) for wid, fid, name in rows}

    def last_step(self, workflow_id: str) -> tuple[int, str] | None:
        """``(step number, function name)`` of the workflow's last recorded step, or None."""
        return self.last_steps([workflow_id]).get(workflow_id)


@dataclass(frozen=True)
class StoredStep:
    """One recorded step of a workflow, as :meth:`ValueReader.steps` returns it."""

    number: int
    name: str
    output: Any
    error: str | None
    child_workflow_id: str | None
    started_at_ms: int | None
    completed_at_ms: int | None

    @property
    def duration_ms(self) -> int | None:
        if self.started_at_ms is None or self.completed_at_ms is None:
            return None
        return self.completed_at_ms - self.started_at_ms
