"""The streams of one workflow as the DBOS view shows them: each key, its last values (paged), closed or not.

Reads go through the connection's safe reader (:class:`~dbos_orchestrator.store.streams.StreamReads`):
a pickled value shows as "pickled, not decoded" unless the connection has ``allow_pickle``.
Included by ``templates/_workflow.html`` from its own template, ``templates/_streams.html``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from dbos_orchestrator.store.values import ValueReader
    from fastapi import Request

__all__ = ["STREAM_PAGE", "StreamView", "stream_views"]

STREAM_PAGE = 20  # values shown per stream (the newest; "older" pages back)


@dataclass(frozen=True)
class StreamView:
    """One stream key: how many values, whether closed, a page of ``(offset, value)`` and the link to older ones."""

    key: str
    count: int
    closed: bool
    values: list[tuple[int, Any]] = field(default_factory=list)
    older: str | None = None  # link to the page before the first value shown
    newest: str | None = None  # link back to the last values (when paged back)


def stream_views(
    reader: ValueReader,
    workflow_id: str,
    *,
    link: Callable[[str, int | None], str],
    key: str | None = None,
    before: int | None = None,
) -> list[StreamView]:
    """Every stream of the workflow: the last :data:`STREAM_PAGE` values (before offset ``before`` for
    stream ``key``), newest last.

    :param link: ``link(key, before)`` is the URL of that stream's page ending before ``before``
        (None: its newest values).
    """
    views = []
    for summary in reader.stream_summaries(workflow_id):
        paged = summary.key == key and before is not None
        values = reader.stream_values_for_display(
            workflow_id, summary.key, last=STREAM_PAGE, before=before if paged else None
        )
        first = values[0][0] if values else 0
        views.append(
            StreamView(
                key=summary.key,
                count=summary.count,
                closed=summary.closed,
                values=values,
                older=link(summary.key, first) if first > 0 else None,
                newest=link(summary.key, None) if paged else None,
            )
        )
    return views


def stream_page_link(request: Request) -> Callable[[str, int | None], str]:
    """The URL of this page showing stream ``key``'s values before offset ``before`` (None: the newest)."""

    def link(key: str, before: int | None) -> str:
        url = request.url.remove_query_params(["stream", "before", "fragment"])
        return str(url if before is None else url.include_query_params(stream=key, before=before))

    return link
