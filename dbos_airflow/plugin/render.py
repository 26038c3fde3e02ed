"""Server-rendered HTML of the DBOS views (no JavaScript build; every value escaped here)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from dbos_airflow.status import DBOSWorkflowStatus
from dbos_airflow.values import Undecoded

if TYPE_CHECKING:
    from collections.abc import Iterable

    from dbos import WorkflowStatus

    from dbos_airflow.plugin.data import WorkflowDetail, WorkflowFilters

MAX_VALUE_CHARS = 4000
MAX_STEP_VALUE_CHARS = 300

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:12px;color:#1a202c;background:#fff}
@media (prefers-color-scheme: dark){body{color:#e2e8f0;background:#1a202c}
 table.grid td,table.grid th{border-color:#4a5568}pre{background:#2d3748}.bar-bg{background:#2d3748}}
h2{font-size:18px;margin:0 0 8px}h3{font-size:15px;margin:18px 0 6px}
table.grid{border-collapse:collapse;width:100%}table.grid td,table.grid th{border-bottom:1px solid #e2e8f0;
 padding:4px 6px;text-align:left;vertical-align:top}table.kv th{width:170px;text-align:left;padding:2px 8px 2px 0}
pre{background:#f7fafc;padding:6px;margin:0;white-space:pre-wrap;word-break:break-word;max-height:300px;overflow:auto}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:12px}
.SUCCESS{background:#38a169}.ERROR,.MAX_RECOVERY_ATTEMPTS_EXCEEDED{background:#e53e3e}.CANCELLED{background:#718096}
.PENDING{background:#3182ce}.ENQUEUED,.DELAYED{background:#d69e2e}
.msg{padding:8px 10px;border-radius:4px;margin:8px 0}
.err{background:#fed7d7;color:#742a2a}.ok{background:#c6f6d5;color:#22543d}
.undecoded{font-style:italic;color:#a0aec0}.bar-bg{position:relative;height:10px;background:#edf2f7;min-width:160px}
.bar{position:absolute;top:0;height:10px;background:#3182ce}.bar.failed{background:#e53e3e}
button{cursor:pointer;margin-right:6px}#confirm{display:none;position:fixed;top:12px;right:12px;left:12px;
 padding:12px;background:#fffbea;color:#1a202c;border:1px solid #d69e2e;border-radius:6px;z-index:10}
form.filters input,form.filters select{margin-right:8px}
"""

SCRIPT = """
(function(){
  const body=document.getElementById('dbos-body'); let paused=false, pending=null;
  function refresh(){ if(paused||!body||body.dataset.active!=='1') return;
    const u=new URL(location.href); u.searchParams.set('fragment','1');
    fetch(u,{credentials:'same-origin'}).then(r=>r.ok?r.text():null).then(t=>{
      if(t!==null&&!paused){const d=document.createElement('div');d.innerHTML=t;const n=d.firstElementChild;
        if(n){body.innerHTML=n.innerHTML;body.dataset.active=n.dataset.active;}}}).catch(()=>{});}
  setInterval(refresh, 2000);
  const box=document.getElementById('confirm'), text=document.getElementById('confirm-text');
  if(!box) return;  // read-only: no actions
  document.addEventListener('click',ev=>{
    const b=ev.target.closest('button[data-action]'); if(!b) return;
    pending={action:b.dataset.action,workflow_id:b.dataset.workflow,step:b.dataset.step?Number(b.dataset.step):null};
    text.textContent=b.dataset.confirm; box.style.display='block'; paused=true;});
  document.getElementById('confirm-no').addEventListener('click',()=>{box.style.display='none';paused=false;});
  document.getElementById('confirm-yes').addEventListener('click',()=>{
    box.style.display='none';
    fetch(location.pathname+location.search,{method:'POST',credentials:'same-origin',
      headers:{'Content-Type':'application/json','X-DBOS-Airflow':'1'},body:JSON.stringify(pending)})
    .then(r=>r.json().then(j=>({ok:r.ok,j}))).then(({ok,j})=>{
      const m=document.getElementById('dbos-msg'); m.className='msg '+(ok?'ok':'err');
      m.textContent=j.message||j.detail||'';
      if(j.link){const a=document.createElement('a');a.href=j.link;a.id='new-workflow';
        a.textContent=' open '+j.workflow_id;m.appendChild(a);}
      paused=false; body.dataset.active='1'; refresh();});});
})();
"""


# Airflow shows the view in a sandboxed iframe that may not navigate the top window; it may script
# it (same origin), so a link to an Airflow page pushes the route into the UI's own router.
TOP_SCRIPT = """
document.addEventListener('click',ev=>{
  const a=ev.target.closest('a[target=_top]'); if(!a||window.top===window) return;
  try{const top=window.top; ev.preventDefault(); top.history.pushState({},'',a.href);
      top.dispatchEvent(new PopStateEvent('popstate',{state:{}}));}catch(e){location.href=a.href;}
});
"""


def page(title: str, inner: str, *, active: bool = False, actions: bool = False) -> str:
    """A whole HTML page; ``inner`` is already-escaped HTML."""
    confirm = (
        '<div id="confirm"><span id="confirm-text"></span> '
        '<button id="confirm-yes">Confirm</button><button id="confirm-no">Back</button></div>'
        if actions
        else ""
    )
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<style>{STYLE}</style></head><body>{confirm}<div id="dbos-msg"></div>'
        f"{body(inner, active)}<script>{TOP_SCRIPT}{SCRIPT if actions or active else ''}</script></body></html>"
    )


def body(inner: str, active: bool) -> str:
    """The part of the page that polling refreshes."""
    return f'<div id="dbos-body" data-active="{1 if active else 0}">{inner}</div>'


def error_message(text: str) -> str:
    return f'<div class="msg err" id="dbos-error">{escape(text)}</div>'


def when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def duration(ms: int | None) -> str:
    if ms is None:
        return ""
    return f"{ms / 1000:.3f} s" if ms < 60_000 else f"{ms / 60_000:.1f} min"


def value_html(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    if isinstance(value, Undecoded):
        return f'<span class="undecoded">{escape(str(value))}</span>'
    if value is None:
        return '<span class="undecoded">none</span>'
    try:
        text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > limit:
        text = text[:limit] + f"\u2026 ({len(text)} characters)"
    return f"<pre>{escape(text)}</pre>"


def badge(status: str) -> str:
    return f'<span class="badge {escape(status)}" id="dbos-status">{escape(status)}</span>'


def kv_table(rows: Iterable[tuple[str, str]]) -> str:
    return '<table class="kv">' + "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def action_button(action: str, label: str, workflow_id: str, confirm: str, step: int | None = None) -> str:
    step_attr = f' data-step="{step}"' if step is not None else ""
    return (
        f'<button data-action="{action}" data-workflow="{escape(workflow_id)}"{step_attr} '
        f'data-confirm="{escape(confirm)}" id="action-{action}{"-" + str(step) if step is not None else ""}">'
        f"{escape(label)}</button>"
    )


def workflow_html(detail: WorkflowDetail, link_for: Any, *, can_act: bool, task_link: str | None) -> str:
    """The view of one workflow. ``link_for(workflow_id)`` is the URL of another workflow's view."""
    s = detail.status
    wid = s.workflow_id
    try:
        state = DBOSWorkflowStatus.parse(s.status)
    except ValueError:
        state = None
    parts = [f"<h2>DBOS workflow <code>{escape(wid)}</code> {badge(s.status)}</h2>"]
    if can_act:
        buttons = []
        if state is not None and state.is_active():
            buttons.append(action_button("cancel", "Cancel", wid, f"Cancel DBOS workflow {wid}?"))
        if state in (DBOSWorkflowStatus.CANCELLED, DBOSWorkflowStatus.MAX_RECOVERY_ATTEMPTS_EXCEEDED):
            buttons.append(action_button("resume", "Resume", wid, f"Resume DBOS workflow {wid} where it stopped?"))
        buttons.append(
            action_button("fork", "Fork from step 1", wid, f"Fork DBOS workflow {wid} from step 1 (a new workflow)?", 1)
        )
        parts.append("<p>" + "".join(buttons) + "</p>")
    timings = [
        ("created", when(s.created_at)),
        ("dequeued", when(s.dequeued_at)),
        ("first step started", when(detail.steps[0].started_at_ms) if detail.steps else ""),
        ("ended", when(s.completed_at)),
    ]
    total = (s.completed_at or s.updated_at or 0) - (s.created_at or 0) if s.created_at else None
    rows = [
        ("name", escape(s.name or "")),
        ("class", escape(s.class_name or "")),
        ("queue", escape(s.queue_name or "")),
        ("app version", escape(s.app_version or "")),
        ("executor", escape(s.executor_id or "")),
        *[(k, escape(v)) for k, v in timings if v],
        ("duration", duration(total) if s.completed_at else ""),
        ("recovery attempts", escape(str(s.recovery_attempts or 0))),
    ]
    if task_link:
        rows.append(("Airflow task", f'<a href="{escape(task_link)}" target="_top">task instance</a>'))
    for label, other in (("parent", s.parent_workflow_id), ("forked from", s.forked_from)):
        if other:
            rows.append((label, f'<a href="{escape(link_for(other))}">{escape(other)}</a>'))
    parts.append(kv_table((k, v) for k, v in rows if v))
    parts.append("<h3>Inputs</h3>" + value_html(detail.inputs))
    parts.append("<h3>Output</h3>" + value_html(detail.output))
    if detail.error:
        parts.append(f'<h3>Error</h3><pre id="dbos-workflow-error">{escape(detail.error)}</pre>')
    if detail.events:
        parts.append(
            "<h3>Events</h3>"
            + kv_table((key, value_html(value, MAX_STEP_VALUE_CHARS)) for key, value in detail.events.items())
        )
    parts.append(steps_html(detail, link_for, can_act=can_act))
    return "".join(parts)


def steps_html(detail: WorkflowDetail, link_for: Any, *, can_act: bool) -> str:
    steps, wid = detail.steps, detail.status.workflow_id
    if not steps:
        return "<h3>Steps</h3><p>No steps recorded yet.</p>"
    starts = [x.started_at_ms for x in steps if x.started_at_ms is not None]
    ends = [x.completed_at_ms or x.started_at_ms for x in steps if x.started_at_ms is not None]
    t0, t1 = (min(starts), max(e for e in ends if e is not None)) if starts else (0, 0)
    span = max(t1 - t0, 1)
    out = [
        f"<h3>Steps ({len(steps)})</h3>"
        '<table class="grid" id="dbos-steps"><tr><th>#</th><th>function</th><th>start</th><th>end</th>'
        "<th>duration</th><th>output or error</th><th>timeline</th>" + ("<th></th>" if can_act else "") + "</tr>"
    ]
    for x in steps:
        if x.error is not None:
            result = f"<pre>{escape(x.error)}</pre>"
        elif x.child_workflow_id:
            result = (
                f'child workflow <a href="{escape(link_for(x.child_workflow_id))}">{escape(x.child_workflow_id)}</a>'
            )
        else:
            result = value_html(x.output, MAX_STEP_VALUE_CHARS)
        bar = ""
        if x.started_at_ms is not None:
            left = 100 * (x.started_at_ms - t0) / span
            width = max(100 * ((x.completed_at_ms or t1) - x.started_at_ms) / span, 0.5)
            cls = "bar failed" if x.error is not None else "bar"
            bar = f'<div class="bar-bg"><div class="{cls}" style="left:{left:.2f}%;width:{width:.2f}%"></div></div>'
        fork = ""
        if can_act:
            fork = (
                "<td>"
                + action_button(
                    "fork",
                    "Fork from here",
                    wid,
                    f"Fork DBOS workflow {wid} from step {x.number} (a new workflow)?",
                    x.number,
                )
                + "</td>"
            )
        out.append(
            f'<tr class="step" data-step="{x.number}"><td>{x.number}</td><td>{escape(x.name)}</td>'
            f"<td>{when(x.started_at_ms)}</td><td>{when(x.completed_at_ms)}</td><td>{duration(x.duration_ms)}</td>"
            f"<td>{result}</td><td>{bar}</td>{fork}</tr>"
        )
    out.append("</table>")
    return "".join(out)


def ids_html(conn_id: str, workflow_ids: list[str], link_for: Any) -> str:
    """A task's many workflows (bulk enqueue): one link each."""
    items = "".join(f'<li><a href="{escape(link_for(w))}">{escape(w)}</a></li>' for w in workflow_ids[:1000])
    more = f"<p>\u2026 and {len(workflow_ids) - 1000} more</p>" if len(workflow_ids) > 1000 else ""
    return f"<h2>{len(workflow_ids)} DBOS workflows (connection {escape(conn_id)})</h2><ul>{items}</ul>{more}"


def list_html(
    conn_id: str,
    rows: list[WorkflowStatus],
    filters: WorkflowFilters,
    has_next: bool,
    base: str,
    task_links: dict[str, str],
) -> str:
    """The nav page: filters, one row per workflow, pagination."""
    options = "".join(
        f'<option value="{s.value}"{" selected" if s.value == filters.status else ""}>{s.value}</option>'
        for s in DBOSWorkflowStatus
    )
    since = "" if filters.since_hours is None else f"{filters.since_hours:g}"
    form = (
        f'<form class="filters" method="get" action="{escape(base)}/workflows">'
        f'connection <input name="conn_id" value="{escape(conn_id)}" size="14"> '
        f'status <select name="status"><option value="">any</option>{options}</select>'
        f'name <input name="name" value="{escape(filters.name)}" size="14">'
        f'queue <input name="queue" value="{escape(filters.queue)}" size="10">'
        f'id prefix <input name="id_prefix" value="{escape(filters.id_prefix)}" size="14">'
        f'last <input name="since_hours" value="{escape(since)}" size="4"> hours '
        "<button>Filter</button></form>"
    )
    cols = ("workflow id", "status", "name", "queue", "created", "ended", "Airflow task")
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"
    body_rows = []
    for s in rows:
        view = f"{base}/workflow?" + urlencode({"conn_id": conn_id, "id": s.workflow_id})
        task = task_links.get(s.workflow_id)
        task_cell = f'<a href="{escape(task)}" target="_top">task instance</a>' if task else ""
        body_rows.append(
            f'<tr class="wf"><td><a href="{escape(view)}">{escape(s.workflow_id)}</a></td><td>{badge(s.status)}</td>'
            f"<td>{escape(s.name or '')}</td><td>{escape(s.queue_name or '')}</td><td>{when(s.created_at)}</td>"
            f"<td>{when(s.completed_at)}</td><td>{task_cell}</td></tr>"
        )
    query = {
        "conn_id": conn_id,
        "status": filters.status,
        "name": filters.name,
        "queue": filters.queue,
        "id_prefix": filters.id_prefix,
        "since_hours": since,
    }
    nav = []
    pages = f"{escape(base)}/workflows?"
    if filters.page > 1:
        nav.append(f'<a href="{pages}{escape(urlencode({**query, "page": filters.page - 1}))}">previous</a>')
    nav.append(f"page {filters.page}")
    if has_next:
        nav.append(f'<a id="next-page" href="{pages}{escape(urlencode({**query, "page": filters.page + 1}))}">next</a>')
    table = (
        f'<table class="grid" id="dbos-workflows">{head}{"".join(body_rows)}</table>'
        if rows
        else "<p>No workflows match.</p>"
    )
    pager = " \u00b7 ".join(nav)
    return f"<h2>DBOS workflows</h2>{form}{table}<p>{pager}</p>"
