"""A record kept once for a batch of workflows, on one of them (the anchor), instead of on each.

DBOS' ``enqueue_workflow`` SQL function (the fast bulk path, :mod:`dbos_orchestrator.store.bulk`)
takes no ``attributes``, and DBOS' client writes attributes one workflow at a time. A batch whose
ids are a prefix and an index (``<prefix>0`` .. ``<prefix><count-1>``) and that shares one
attributes record (an orchestrator's owner record) is therefore written as: every item but the
first through the SQL function, without attributes, then the first (the **anchor**) through DBOS'
client in the same transaction, its record extended with the batch's **extent**::

    {"<key>": {...the record..., "batch": {"prefix": "<prefix>", "count": N, "created_at": T}}}

``T`` is the ``created_at`` the SQL function gave every other item: Postgres' transaction time,
the same for the whole transaction, so a workflow made under one of the batch's ids by anyone else
(before, or after the item was deleted) does not match. A workflow is a **member** of an anchor's
batch when its id is ``prefix`` and a canonical index below ``count``, its ``created_at`` is ``T``
and it carries no record of its own under the key; the anchor's own id must be one of the batch's
ids. Airflow-free (docs/batch.md, "Enqueue throughput and the owner record").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["EXTENT_FIELD", "BatchExtent", "extent_of", "prefix_and_index"]

EXTENT_FIELD = "batch"
_TRAILING_INDEX = re.compile(r"(0|[1-9][0-9]{0,17})\Z")  # canonical, at most 18 digits (fits a bigint)


@dataclass(frozen=True)
class BatchExtent:
    """The ids (``prefix`` + 0 .. ``count``-1) and the ``created_at`` (epoch ms) of one batch."""

    prefix: str
    count: int
    created_at: int

    def as_json(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "count": self.count, "created_at": self.created_at}

    def index_of(self, workflow_id: str) -> int | None:
        """The item index of ``workflow_id`` in this batch, or None."""
        split = prefix_and_index(workflow_id)
        if split is None or split[0] != self.prefix or split[1] >= self.count:
            return None
        return split[1]

    def ids(self, limit: int | None = None) -> list[str]:
        """The batch's ids in item order (the first ``limit``)."""
        return [f"{self.prefix}{i}" for i in range(self.count if limit is None else min(limit, self.count))]

    def has_member(self, anchor_id: str, workflow_id: str, created_at: Any, own_record: bool) -> bool:
        """Whether ``workflow_id`` (created at ``created_at``, with a record of its own or not) belongs to
        the batch of the anchor ``anchor_id`` (the anchor itself included)."""
        if self.index_of(anchor_id) is None or self.index_of(workflow_id) is None:
            return False
        return workflow_id == anchor_id or (not own_record and created_at == self.created_at)


def prefix_and_index(workflow_id: str) -> tuple[str, int] | None:
    """``("a:b:", 12)`` for ``"a:b:12"``: the id's trailing canonical index and what precedes it."""
    match = _TRAILING_INDEX.search(workflow_id)
    if match is None or match.start() == 0:
        return None
    return workflow_id[: match.start()], int(match.group(1))


def extent_of(record: Any) -> BatchExtent | None:
    """The extent stored in an anchor's record (the value under its key), or None (none, or not well formed)."""
    if not isinstance(record, Mapping):
        return None
    extent = record.get(EXTENT_FIELD)
    if not isinstance(extent, Mapping):
        return None
    prefix, count, created_at = extent.get("prefix"), extent.get("count"), extent.get("created_at")
    if not isinstance(prefix, str) or not prefix or type(count) is not int or type(created_at) is not int:
        return None
    if count < 2 or created_at < 0:
        return None
    return BatchExtent(prefix, count, created_at)
