"""The batch wait's watermark arithmetic (dbos_orchestrator/waiting/batch.py; docs/batch.md, "How the wait works")."""

from __future__ import annotations

import pytest
from dbos_orchestrator.waiting.batch import BatchSpec, BatchTracker


def test_watermark_keeps_settled_counts_and_moves_on() -> None:
    """Postgres answers (status, n in window, n below the new watermark, new watermark)."""
    tracker = BatchTracker(BatchSpec.derived("k", "k:", 10))
    counts = tracker.update([("SUCCESS", 4, 3, 3), ("ENQUEUED", 6, 0, 3)], postgres=True)
    assert counts.by_status == {"SUCCESS": 4, "ENQUEUED": 6} and tracker.first == 3
    counts = tracker.update([("SUCCESS", 5, 4, 8), ("ERROR", 1, 1, 8), ("PENDING", 1, 0, 8)], postgres=True)
    assert counts.by_status == {"SUCCESS": 8, "ERROR": 1, "PENDING": 1} and tracker.first == 8
    assert (counts.ended, counts.failed, counts.pending, counts.done) == (9, 1, 1, False)
    # Items 3-7 settled (4 SUCCESS, 1 ERROR); item 8 was PENDING, item 9 SUCCESS: the window is 8-9.
    counts = tracker.update([("SUCCESS", 2, 2, 10)], postgres=True)
    assert counts.by_status == {"SUCCESS": 9, "ERROR": 1} and counts.done and tracker.first == 10


def test_explicit_ids_are_checked_and_round_trip() -> None:
    spec = BatchSpec.of_ids(["a", "b"])
    assert BatchSpec.from_json(spec.to_json()) == spec and spec.key.startswith("batch-of-2-")
    assert BatchSpec.for_items("k", "k:", ["k:0", "k:1"]).ids is None  # derived: no id list
    assert BatchSpec.for_items("k", "k:", ["k:0", "mine"]).ids == ("k:0", "mine")
    with pytest.raises(ValueError, match="more than once"):
        BatchSpec.of_ids(["a", "a"])
