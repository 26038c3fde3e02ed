"""The bridge: every DBOS workflow that ends becomes a Prefect event (README, "Events").

A long-running process (``prefect-dbos bridge --block NAME``, the pattern of prefect-aws' ECS
observer) reads the core's completion feed (one statement per tick, from the shared waiter) and
emits ``dbos.workflow.<status>`` per completion. The event id is derived from the completion
(system database, workflow id, ``completed_at``), so a redelivered completion carries the same id
and the Prefect server drops it; a resumed workflow that ends again is a new completion. The
feed's position is stored (a Prefect Variable) only after the page's events were sent, so a
bridge killed mid-page re-sends that page, never skips it. A ``DeploymentEventTrigger`` on
``dbos.workflow.error`` then starts a deployment. Each event's related resources are the flow run,
task run and deployment that enqueued the workflow, read from its ``attributes``
(:mod:`prefect_dbos.events`), so Prefect's UI links the event to the run.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
from typing import TYPE_CHECKING, Any

from dbos_orchestrator.waiting.feed import Completion, CompletionFilter, FeedState

from prefect_dbos.events import event_id, related_resources, workflow_resource

if TYPE_CHECKING:
    from prefect.events import Event

    from prefect_dbos.database import DBOSSystemDatabase

log = logging.getLogger("prefect_dbos.bridge")


def completion_key(target: str, completion: Completion) -> str:
    """One key per completion edge: ``<system database>|<workflow id>|<completed_at>``."""
    return f"{target}|{completion.workflow_id}|{completion.completed_at}"


def completion_event(target: str, completion: Completion) -> Event:
    """The Prefect event of one completion, its id derived from the completion (:func:`completion_key`),
    related to the Prefect runs that enqueued the workflow."""
    from prefect.events import Event

    status = completion.status.value
    workflow = {
        "workflow_id": completion.workflow_id,
        "name": completion.name,
        "class_name": completion.class_name,
        "queue_name": completion.queue_name,
        "app_version": completion.app_version,
        "status": status,
    }
    return Event.model_validate(
        {
            "id": event_id(target, completion.workflow_id, completion.completed_at),
            "event": f"dbos.workflow.{status.lower()}",
            "occurred": datetime.datetime.fromtimestamp(completion.completed_at / 1000, tz=datetime.UTC),
            "resource": workflow_resource(target, workflow),
            "related": related_resources(completion.attributes),
            "payload": {"created_at": completion.created_at, "completed_at": completion.completed_at},
        }
    )


def variable_name(name: str) -> str:
    """The Prefect Variable holding a bridge's position."""
    return "prefect_dbos_bridge_" + re.sub(r"[^a-z0-9_]+", "_", name.lower())


async def load_state(name: str) -> FeedState | None:
    """The stored position of bridge ``name`` (None: never stored, or unreadable)."""
    from prefect.variables import Variable

    stored: Any = await Variable.aget(variable_name(name), default=None)
    return FeedState.from_json(stored)


async def save_state(name: str, state: FeedState) -> None:
    from prefect.variables import Variable

    await Variable.aset(variable_name(name), state.to_json(), overwrite=True)


async def run_bridge(
    database: DBOSSystemDatabase,
    *,
    name: str,
    flt: CompletionFilter | None = None,
    stop: asyncio.Event | None = None,
    start_ms: int | None = None,
    run_deployment: str | None = None,
) -> int:
    """Emit an event per completion until ``stop`` is set; return how many were sent.

    :param name: the bridge's name: its position is stored under it.
    :param flt: which completions (default: every terminal status of every workflow).
    :param stop: set to end the bridge after the page in hand.
    :param start_ms: where a bridge with no stored position starts (default: now).
    :param run_deployment: also start this deployment (``flow/deployment``) once per completion,
        with ``workflow_id`` and ``status`` parameters and an idempotency key derived from the
        completion: exactly once beyond the server's 30-minute event dedupe.
    """
    from dbos_orchestrator.waiting.feed import now_ms
    from prefect.events.clients import get_events_client

    state = await load_state(name) or FeedState.starting_at(start_ms if start_ms is not None else now_ms())
    target = (await asyncio.to_thread(database.get_client)).target
    waiter = await database.waiter()
    feed = waiter.completion_feed(flt or CompletionFilter(), state)
    sent = 0
    log.info("DBOS bridge %r on %s from %s", name, target, state.position)
    try:
        async with get_events_client(checkpoint_every=1) as events:
            while stop is None or not stop.is_set():
                page = await feed.next_page(timeout=0.5)
                if page is None:
                    continue
                for completion in page.completions:
                    await events.emit(completion_event(target, completion))  # checkpointed: sent
                    if run_deployment is not None:
                        await start_deployment(run_deployment, target, completion)
                await save_state(name, page.state)
                sent += len(page.completions)
                log.info("DBOS bridge %r: %s event(s) sent, %s in all", name, len(page.completions), sent)
    finally:
        waiter.close_feed(feed)
    return sent


async def start_deployment(name: str, target: str, completion: Completion) -> None:
    """Start deployment ``name`` for one completion; a repeated completion key starts nothing new."""
    from prefect.deployments.flow_runs import arun_deployment

    await arun_deployment(
        name,
        parameters={"workflow_id": completion.workflow_id, "status": completion.status.value},
        idempotency_key=f"dbos:{completion_key(target, completion)}",
        timeout=0,
    )


def describe(flt: CompletionFilter, extra: dict[str, Any] | None = None) -> str:
    """One line naming a bridge's filter (its start-up log line)."""
    parts = {
        "names": sorted(flt.names) if flt.names else "any",
        "queues": sorted(flt.queue_names) if flt.queue_names else "any",
        "statuses": sorted(s.value for s in flt.statuses),
        **(extra or {}),
    }
    return ", ".join(f"{k}={v}" for k, v in parts.items())
