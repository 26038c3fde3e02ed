"""The messages DBOS holds for a workflow (``DBOS.send`` rows, kept whether received or not): how the
approval and send tests count what reached a workflow, read through dbos' own table definitions."""

from __future__ import annotations

from typing import Any

__all__ = ["messages_to"]


def messages_to(engine: Any, workflow_id: str) -> list[tuple[str, bool]]:
    """``(message_uuid, consumed)`` of every message sent to ``workflow_id``.

    :param engine: the system database's SQLAlchemy engine, e.g. ``DBOSClient.system_database_engine``
        (it translates the placeholder schema of dbos' table definitions).
    """
    import sqlalchemy as sa
    from dbos._schemas.system_database import SystemSchema

    n = SystemSchema.notifications
    with engine.connect() as conn:
        rows = conn.execute(sa.select(n.c.message_uuid, n.c.consumed).where(n.c.destination_uuid == workflow_id))
        return [(r[0], r[1]) for r in rows]
