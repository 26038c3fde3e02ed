"""What a Prefect run shows of its DBOS workflows: a link per workflow, a summary at the end,
and the Prefect run's URL recorded on the workflow (README, "Links")."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from prefect_dbos.database import DBOSSystemDatabase


def artifact_key(kind: str, workflow_id: str) -> str:
    """A valid artifact key (lowercase letters, digits, dashes) naming one workflow."""
    slug = re.sub(r"[^a-z0-9]+", "-", workflow_id.lower()).strip("-")[:60]
    digest = hashlib.sha256(workflow_id.encode()).hexdigest()[:8]
    return f"dbos-{kind}-{slug}-{digest}"


async def link_workflow(database: DBOSSystemDatabase, workflow_id: str) -> None:
    """A link artifact to the workflow in the console, when the block has ``console_url``; one to the
    trace the workflow joined, when OpenTelemetry traces the task and the block has ``trace_url``."""
    from dbos_orchestrator.tracing import trace_id_of, trace_link

    link = database.link_for(workflow_id)
    trace = trace_link(database.trace_url, trace_id_of())
    if link is None and trace is None:
        return
    from prefect.artifacts import acreate_link_artifact

    if link is not None:
        await acreate_link_artifact(
            link,
            link_text=f"DBOS workflow {workflow_id}",
            key=artifact_key("link", workflow_id),
            description="The DBOS workflow this run enqueued or re-attached to.",
        )
    if trace is not None:
        await acreate_link_artifact(
            trace,
            link_text=f"Trace of DBOS workflow {workflow_id}",
            key=artifact_key("trace", workflow_id),
            description="The trace (OpenTelemetry) this task run and its DBOS workflow share.",
        )


def summarize(
    database: DBOSSystemDatabase,
    status: dict[str, Any],
    last_steps: Callable[[list[str]], dict[str, tuple[int, str]]],
) -> None:
    """Queue a markdown artifact with the workflow's id, queue, status, duration and last step.

    It is written after the task returns (:mod:`prefect_dbos.artifacts`): what the task's context
    holds (the link, the trace id) is taken now, the last step and the write happen in the writer's
    thread (``last_steps(ids)``: one database read for the writer's whole batch).
    """
    from dbos_orchestrator.tracing import trace_id_of

    from prefect_dbos.artifacts import write_later

    created, updated = status.get("created_at"), status.get("updated_at")
    took = f"{(updated - created) / 1000:.1f} s" if isinstance(created, int) and isinstance(updated, int) else "?"
    wid = status["workflow_id"]
    link = database.link_for(wid)
    shown = f"[{wid}]({link})" if link else f"`{wid}`"
    trace_id = trace_id_of()

    def markdown(step: tuple[int, str] | None) -> str:
        rows = [
            ("workflow", shown),
            ("name", f"`{status.get('name')}`"),
            ("queue", f"`{status.get('queue_name')}`"),
            ("status", f"**{status['status']}**"),
            ("duration", took),
            ("last step", "none recorded" if step is None else f"#{step[0]} {step[1]}"),
        ]
        if trace_id is not None:
            rows.append(("trace", f"`{trace_id}`"))
        table = "\n".join(f"| {name} | {value} |" for name, value in rows)
        return f"### DBOS workflow\n\n| | |\n|---|---|\n{table}\n"

    write_later(
        "markdown",
        artifact_key("summary", wid),
        "How the DBOS workflow ended.",
        markdown,
        prefetch=(("last-steps", database.get_client()), last_steps, wid),
    )


async def summarize_batch(key: str, counts: dict[str, Any]) -> None:
    """A markdown artifact with a batch's counts by status (one write, however many workflows)."""
    from prefect.artifacts import acreate_markdown_artifact

    rows = "\n".join(f"| {status} | {n:,} |" for status, n in counts["by_status"].items())
    await acreate_markdown_artifact(
        f"### {counts['total']:,} DBOS workflows\n\n"
        f"{counts['ended']:,} ended ({counts['succeeded']:,} succeeded, {counts['failed']:,} failed), "
        f"{counts['pending']:,} pending\n\n| status | workflows |\n|---|---|\n{rows}\n",
        key=artifact_key("batch", key),
        description="How the DBOS workflows this task waited for ended.",
    )
