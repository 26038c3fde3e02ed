"""Workflow ids and idempotency keys derived from the Prefect run and the call.

A derived id is what makes a task retry, a flow retry or ``prefect flow-run retry`` re-attach
to the workflow the first attempt enqueued instead of enqueuing another (README, "Retries").

* The flow run id is stable across task retries and flow retries (both kinds); the task run id
  and ``dynamic_key`` are new on a flow retry, and ``task_key`` is the same for every call site
  of a library task, so neither is part of the id.
* The call is identified by what it enqueues: a digest of the queue, workflow name, class and
  canonical arguments, plus ``n``, the occurrence of that digest within the current attempt of
  the flow run (identical calls are interchangeable, so the order of concurrent submits does
  not matter). A task run keeps the ``n`` it got on its first try.
* A subflow's own run id is new on every attempt of its parent, but the task run that stands
  for it in the parent is not: inside a subflow, ids are prefixed with the parent flow run id
  and the digest includes that task run's id (so two calls of the same subflow differ).
* Outside a flow run (an autonomous task) the task run id stands in for the flow run id.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from typing import Any

from dbos_orchestrator.exceptions import DBOSOptionsError

PREFIX = "prefect"
DIGEST_CHARS = 12

_LOCK = threading.Lock()
# counting scope -> digest -> next occurrence
_OCCURRENCES: dict[tuple[str, ...], dict[str, int]] = {}
# (prefect-dbos task run id, digest) -> the occurrence its first try was given
_GIVEN: dict[tuple[str, str], int] = {}
# (flow attempt, task_key) -> task run id -> its index among that task's runs in the attempt
_TASK_INDEX: dict[tuple[str, ...], dict[str, int]] = {}
_PARENTS: dict[str, str | None] = {}
# A long-lived process (a served deployment) runs many flow runs: each table keeps its newest entries.
MAX_ENTRIES = 20_000


def _bounded(table: dict[Any, Any]) -> None:
    """Drop the oldest entries of ``table`` beyond :data:`MAX_ENTRIES` (dicts keep insertion order)."""
    while len(table) > MAX_ENTRIES:
        del table[next(iter(table))]


# The names of this package's own tasks (prefect_dbos.tasks): their task run is not the scope of a call.
OWN_TASK_PREFIXES = (
    "enqueue-dbos-",
    "wait-for-dbos-",
    "get-dbos-",
    "send-dbos-",
    "cancel-dbos-",
    "resume-dbos-",
    "fork-dbos-",
)


@dataclass(frozen=True)
class RunIdentity:
    """Who is calling.

    :param owner_id: the run whose id prefixes derived ids (the flow run; a subflow's parent).
    :param scope: what calls are counted in: a flow attempt, or one try of the user's task
        that made the call (counting restarts on each try, so a retry finds the same ids).
    :param salt: what tells apart calls of different subflows / different user task runs.
    :param memo: this package's own task run, whose retries keep the occurrence of their first try.
    """

    owner_id: str
    scope: tuple[str, ...]
    salt: str
    memo: str | None


def _parent_flow_run_id(flow_run_id: str) -> str | None:
    """The parent flow run of a subflow run (read once per subflow run per process)."""
    if flow_run_id not in _PARENTS:
        from prefect.runtime import flow_run

        parent = flow_run.get_parent_flow_run_id()
        _PARENTS[flow_run_id] = str(parent) if parent else None
        _bounded(_PARENTS)
    return _PARENTS[flow_run_id]


# The private attribute of Prefect's ContextModel that _calling_task_run reads (see there).
CALLER_TOKEN = "_token"


def _calling_task_run(task_ctx: Any) -> Any:
    """The task run this package's task was called from (a user's task), or None.

    Whether there is one is Prefect's public record: the own task run's
    ``task_inputs["__parents__"]`` (``prefect.tasks._infer_parent_task_runs`` puts the calling task
    run there when it creates the run, if it is in the same flow run). That record holds only the
    caller's id, and the counting scope needs the caller's ``run_count`` and ``task_key`` too (a
    retry of the caller must count its calls again from 0); task runs reach the API asynchronously
    (events), so the API cannot be asked for them in time, and Prefect 3.9 has no public way to
    reach the caller's ``TaskRunContext``. So the caller's context is read from
    ``ContextModel._token`` (private): the ``contextvars.Token`` Prefect keeps when it enters a
    context, whose ``old_value`` is the context that was current before, the caller's. The run
    found must be the one Prefect recorded; if Prefect stops keeping the token, the call fails
    naming the way out rather than deriving ids a retry would not find again.
    """
    from prefect.context import TaskRunContext

    recorded = {str(getattr(p, "id", "")) for p in (task_ctx.task_run.task_inputs or {}).get("__parents__", ())}
    recorded.discard("")
    if not recorded:
        return None  # called straight from a flow (or from another flow run's task)
    if CALLER_TOKEN not in getattr(type(task_ctx), "__private_attributes__", {}):
        raise DBOSOptionsError(
            "prefect-dbos cannot read the task run it was called from in this Prefect version "
            "(TaskRunContext keeps no _token): pass key= or workflow_id= to this call"
        )
    own_id = task_ctx.task_run.id
    ctx = task_ctx
    for _ in range(100):  # the engine may enter a task's own context more than once
        old = getattr(getattr(ctx, CALLER_TOKEN, None), "old_value", None)
        if not isinstance(old, TaskRunContext):
            return None
        if old.task_run.id != own_id:
            return old.task_run if str(old.task_run.id) in recorded else None
        ctx = old
    return None


def _task_scope(attempt: tuple[str, ...], task_run: Any) -> tuple[tuple[str, ...], str]:
    """The counting scope and salt of one try of a user's task run."""
    with _LOCK:
        runs = _TASK_INDEX.setdefault((*attempt, task_run.task_key), {})
        index = runs.setdefault(str(task_run.id), len(runs))
        _bounded(_TASK_INDEX)
    return ("task", str(task_run.id), str(task_run.run_count)), f"{task_run.task_key}#{index}"


def current_run() -> RunIdentity:
    """The identity of the running Prefect task or flow; a clear error outside any run.

    Reads the Prefect API only in a subflow (for its parent flow run, once).
    """
    from prefect.context import FlowRunContext, TaskRunContext

    task_ctx = TaskRunContext.get()
    flow_ctx = FlowRunContext.get()
    flow_run = flow_ctx.flow_run if flow_ctx is not None else None
    if task_ctx is None and flow_run is None:
        raise DBOSOptionsError(
            "no Prefect flow run or task run is running: pass workflow_id= explicitly, or call this inside a "
            "@flow or @task"
        )
    task_run = task_ctx.task_run if task_ctx is not None else None
    flow_run_id = str(task_run.flow_run_id) if task_run is not None and task_run.flow_run_id else None
    if flow_run_id is None and flow_run is not None:
        flow_run_id = str(flow_run.id)
    if flow_run_id is None:  # an autonomous task
        assert task_run is not None
        return RunIdentity(str(task_run.id), ("task", str(task_run.id), "0"), "", str(task_run.id))
    same = flow_run is not None and str(flow_run.id) == flow_run_id
    attempt = ("flow", flow_run_id, str(flow_run.run_count if same and flow_run is not None else 0))
    owner, salt = flow_run_id, ""
    parent_task_run = flow_run.parent_task_run_id if same and flow_run is not None else None
    if parent_task_run is not None:
        parent = _parent_flow_run_id(flow_run_id)
        if parent is not None:
            owner, salt = parent, str(parent_task_run)
    if task_run is None:
        return RunIdentity(owner, attempt, salt, None)
    own = task_ctx is not None and task_ctx.task.name.startswith(OWN_TASK_PREFIXES)
    user_task = _calling_task_run(task_ctx) if own else task_run
    if user_task is None:
        return RunIdentity(owner, attempt, salt, str(task_run.id))
    scope, task_salt = _task_scope(attempt, user_task)
    return RunIdentity(owner, scope, f"{salt}|{task_salt}", str(task_run.id) if own else None)


def flow_run_prefix(flow_run_id: str) -> str:
    """The prefix of every derived workflow id of a flow run (what the cancellation hook cancels)."""
    return f"{PREFIX}-{flow_run_id}-"


def call_digest(queue_name: str, workflow_name: str, class_name: str | None, args: Any, kwargs: Any) -> str:
    """A short digest of what a call enqueues; raises naming the argument a canonical form cannot hold."""
    try:
        canonical = json.dumps([queue_name, workflow_name, class_name, args, kwargs], sort_keys=True, default=repr)
    except (TypeError, ValueError) as exc:
        raise DBOSOptionsError(f"workflow_args/workflow_kwargs cannot be put in canonical form: {exc}") from None
    return hashlib.sha256(canonical.encode()).hexdigest()[:DIGEST_CHARS]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", text)[:40] or "call"


def occurrence(run: RunIdentity, digest: str) -> int:
    """The ``n`` of this call within its scope; a retry of this package's own task keeps its first ``n``."""
    with _LOCK:
        if run.memo is not None:
            given = _GIVEN.get((run.memo, digest))
            if given is not None:
                return given
        counts = _OCCURRENCES.setdefault(run.scope, {})
        n = counts.get(digest, 0)
        counts[digest] = n + 1
        if run.memo is not None:
            _GIVEN[(run.memo, digest)] = n
        _bounded(_OCCURRENCES)
        _bounded(_GIVEN)
        return n


def derived_workflow_id(
    queue_name: str,
    workflow_name: str,
    args: Any = (),
    kwargs: Any = None,
    *,
    class_name: str | None = None,
    key: str | None = None,
    run: RunIdentity | None = None,
) -> str:
    """``prefect-<flow run id>-<call key>``: the same on every retry of the same call.

    :param key: the caller's own call key (unique within the flow run); replaces the digest.
    :param run: the calling run (default: the running one).
    """
    run = run or current_run()
    if key is not None:
        if not key or not key.strip():
            raise DBOSOptionsError("key must be a non-empty string")
        return f"{flow_run_prefix(run.owner_id)}{key}"
    digest = call_digest(queue_name, workflow_name, class_name, [run.salt, *(args or ())], dict(kwargs or {}))
    n = occurrence(run, digest)
    return f"{flow_run_prefix(run.owner_id)}{_slug(workflow_name)}-{digest}-{n}"


def derived_key(purpose: str, *parts: Any, key: str | None = None, run: RunIdentity | None = None) -> str:
    """An idempotency key (a send's, a fork's id) derived like a workflow id.

    :param purpose: what the key is for (``send``, ``fork``), part of the digest.
    :param parts: what identifies the call (destination, topic, message...).
    """
    run = run or current_run()
    if key is not None:
        return f"{flow_run_prefix(run.owner_id)}{key}"
    digest = call_digest(purpose, purpose, None, [run.salt, *parts], {})
    return f"{flow_run_prefix(run.owner_id)}{purpose}-{digest}-{occurrence(run, digest)}"
