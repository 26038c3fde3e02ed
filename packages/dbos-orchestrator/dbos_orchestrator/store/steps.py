"""The read model of a workflow's recorded steps (``operation_outputs``): outcomes, the steps for
display, the last step of many workflows in one statement.

Read through dbos' own table definitions; values shown go through :mod:`dbos_orchestrator.store.codec`
(pickles refused unless allowed); nothing here writes. :class:`~dbos_orchestrator.store.values.ValueReader`
has these reads as its own methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dbos_orchestrator.store.codec import describe_stored_error, display_value

__all__ = ["StepReads", "StoredStep"]


class StepReads:
    """Reads of recorded steps, for a reader that has ``allow_pickle`` and runs statements with ``_rows``."""

    allow_pickle: bool

    def _rows(self, statement: sa.Executable) -> list[tuple[Any, ...]]:
        raise NotImplementedError

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
