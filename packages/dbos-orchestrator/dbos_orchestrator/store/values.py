"""Reads of stored DBOS values (outputs, errors, events, sent messages, inputs) through the safe codec.

Inside an orchestrator every stored value goes through :mod:`dbos_orchestrator.store.codec`, which
refuses pickles unless the front end's configuration opts in (``allow_pickle``) and still
describes a pickled error without loading it. Rows are read through dbos' own table definitions
(``dbos._schemas.system_database``) on the client's engine; nothing here writes. No Airflow import:
both front ends use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dbos_orchestrator.store.codec import (
    decode_value,
    describe_stored_error,
    display_value,
)
from dbos_orchestrator.store.steps import StepReads
from dbos_orchestrator.store.streams import StreamReads

if TYPE_CHECKING:
    from dbos_orchestrator.client import DBOSClient

__all__ = ["ValueReader"]


class ValueReader(StepReads, StreamReads):
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

    def sent_message(self, destination_id: str, idempotency_key: str) -> tuple[bool, Any]:
        """``(sent, message)`` of the message sent to ``destination_id`` with ``idempotency_key``.

        DBOS keeps a sent message's row (``consumed`` once received) under the key
        ``<idempotency key>::<destination>`` (``dbos._sys_db``, ``_send_bulk_txn``), so a message
        sent once, received or not, is found here; the value is decoded (or refused).
        """
        from dbos._schemas.system_database import SystemSchema

        n = SystemSchema.notifications
        rows = self._rows(
            sa.select(n.c.message, n.c.serialization).where(
                n.c.destination_uuid == destination_id, n.c.message_uuid == f"{idempotency_key}::{destination_id}"
            )
        )
        if not rows:
            return False, None
        value, tag = rows[0]
        return True, self._decode(value, tag, destination_id, f"message {idempotency_key!r}")

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
