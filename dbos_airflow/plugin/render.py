"""HTML of the DBOS views: Jinja2 templates (package data, autoescape on) and their filters.

Escaping is the templates' default, never a habit: nothing here builds HTML by hand. The CSS
and JavaScript are package-data files served by the plugin's own ``/static`` route, so the
Content-Security-Policy allows the page's own script and style only (docs/ui.md, "Security").
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbos_orchestrator.status import DBOSWorkflowStatus
from dbos_orchestrator.store.codec import Undecoded

from dbos_airflow.plugin.times import Clock, duration, instant, when, workflow_duration

if TYPE_CHECKING:
    from collections.abc import Callable

    import jinja2
    from dbos import WorkflowStatus
    from dbos_orchestrator.waiting.batch import BatchCounts

    from dbos_airflow.plugin.data import WorkflowDetail
    from dbos_airflow.plugin.records import Filters

MAX_VALUE_CHARS = 4000
MAX_STEP_VALUE_CHARS = 300
HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATIC_FILES = {"dbos.css": "text/css", "dbos.js": "text/javascript", "theme.js": "text/javascript"}


def shown(value: Any, limit: int = MAX_VALUE_CHARS) -> dict[str, Any]:
    """A value as the page shows it: ``{"undecoded": bool, "text": str}`` (the template escapes it)."""
    if isinstance(value, Undecoded):
        return {"undecoded": True, "text": str(value)}
    if value is None:
        return {"undecoded": True, "text": "none"}
    try:
        text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > limit:
        text = text[:limit] + f"\u2026 ({len(text)} characters)"
    return {"undecoded": False, "text": text}


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, duration=duration, shown=shown, instant=instant)
    return env


def _render(template: str, **context: Any) -> str:
    context.setdefault("active", False)
    context.setdefault("actions", False)
    context.setdefault("static", "")
    return environment().get_template(template).render(**context)


def message(title: str, text: str, *, static: str, error: bool = True) -> str:
    """A page with one line: an error (``#dbos-error``) or a notice."""
    return _render("message.html", title=title, text=text, error=error, static=static)


def _workflow_context(
    detail: WorkflowDetail,
    link_for: Callable[[str], str],
    *,
    can_act: bool,
    task_link: str | None,
) -> dict[str, Any]:
    s, state, clock = detail.status, detail.state, detail.clock
    facts = [
        ("name", s.name or ""),
        ("class", s.class_name or ""),
        ("queue", s.queue_name or ""),
        ("app version", s.app_version or ""),
        ("executor", s.executor_id or ""),
        ("created", instant(s.created_at, clock)),
        ("dequeued", instant(s.dequeued_at, clock)),
        ("first step started", when(detail.steps[0].started_at_ms) if detail.steps else ""),
        ("ended", instant(s.completed_at, clock)),
        ("duration", workflow_duration(s.created_at, s.completed_at, clock, detail.steps)),
        ("recovery attempts", str(s.recovery_attempts or 0)),
    ]
    relatives = [(k, v) for k, v in (("parent", s.parent_workflow_id), ("forked from", s.forked_from)) if v]
    return {
        "detail": detail,
        "facts": [(k, v) for k, v in facts if v],
        "relatives": relatives,
        "task_link": task_link,
        "link_for": link_for,
        "can_act": can_act,
        "can_cancel": state is not None and state.is_active(),
        "can_resume": state is not None and state.is_resumable(),
        "steps": [(x, _bar(detail, x)) for x in detail.steps],
        "max_value": MAX_VALUE_CHARS,
        "max_step_value": MAX_STEP_VALUE_CHARS,
    }


def _bar(detail: WorkflowDetail, step: Any) -> tuple[float, float] | None:
    """Where a step sits on the timeline: ``(left %, width %)``."""
    if step.started_at_ms is None:
        return None
    starts = [x.started_at_ms for x in detail.steps if x.started_at_ms is not None]
    ends = [x.completed_at_ms or x.started_at_ms for x in detail.steps if x.started_at_ms is not None]
    t0, t1 = min(starts), max(ends)
    span = max(t1 - t0, 1)
    left = 100 * (step.started_at_ms - t0) / span
    return left, min(max(100 * ((step.completed_at_ms or t1) - step.started_at_ms) / span, 0.5), 100 - left + 0.5)


def workflow_page(
    detail: WorkflowDetail,
    link_for: Callable[[str], str],
    *,
    can_act: bool,
    task_link: str | None,
    static: str,
    fragment: bool = False,
    approval: dict[str, Any] | None = None,
) -> str:
    """The view of one workflow, or (``fragment``) only the part polling refreshes.

    :param approval: an approval task's question and answer (``data.approval_of``).
    """
    context = _workflow_context(detail, link_for, can_act=can_act, task_link=task_link)
    context["approval"] = approval
    if fragment:
        return _render("fragment.html", active=detail.active, **context)
    title = f"DBOS workflow {detail.status.workflow_id}"
    return _render("workflow.html", title=title, active=detail.active, actions=can_act, static=static, **context)


def ids_page(
    conn_id: str,
    counts: BatchCounts,
    rows: list[tuple[int, str, str | None]],
    link_for: Callable[[str], str],
    *,
    page: int,
    page_size: int,
    page_link: Callable[[int], str],
    static: str,
) -> str:
    """A task's many workflows (a bulk task's batch): counts by status, then one page of items."""
    from dbos_orchestrator.messages import batch_progress_message

    return _render(
        "ids.html",
        title="DBOS workflows",
        conn_id=conn_id,
        total=counts.total,
        summary=batch_progress_message(counts.total, counts.by_status),
        by_status=sorted(counts.by_status.items()),
        rows=rows,
        link_for=link_for,
        page=page,
        pages=max(1, -(-counts.total // page_size)),
        page_link=page_link,
        static=static,
    )


def list_page(
    conn_id: str,
    rows: list[WorkflowStatus],
    filters: Filters,
    *,
    base: str,
    view_link: Callable[[str], str],
    page_link: Callable[[int], str],
    has_next: bool,
    task_links: dict[str, str],
    static: str,
    clock: Clock | None = None,
    queues_link: str | bool = False,
) -> str:
    """The nav page: filters, one row per workflow, pagination (times as ``clock`` keeps them); the link to
    the queues view when its reader may open it."""
    return _render(
        "list.html",
        title="DBOS workflows",
        conn_id=conn_id,
        rows=rows,
        filters=filters,
        since="" if filters.since_hours is None else f"{filters.since_hours:g}",
        statuses=[s.value for s in DBOSWorkflowStatus],
        base=base,
        view_link=view_link,
        previous=page_link(filters.page - 1) if filters.page > 1 else None,
        next=page_link(filters.page + 1) if has_next else None,
        task_links=task_links,
        static=static,
        clock=clock or Clock(),
        queues_link=queues_link,
    )


def queues_page(
    conn_id: str, queues: list[dict[str, Any]], schedules: list[dict[str, Any]], *, base: str, static: str
) -> str:
    """The queues view: each queue's limits and backlog by status; each schedule's next run."""
    return _render(
        "queues.html",
        title="DBOS queues",
        conn_id=conn_id,
        queues=queues,
        schedules=schedules,
        base=base,
        static=static,
    )
