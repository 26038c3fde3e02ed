"""The sentences a wait ends or reports progress with (dbos_orchestrator/messages.py; docs/batch.md, "Progress")."""

from __future__ import annotations

from dbos_orchestrator.messages import (
    batch_progress_message,
    event_missing_message,
    still_waiting_message,
    stream_value_line,
)


def test_wait_messages_lead_with_what_happened() -> None:
    status = {"workflow_id": "w1", "status": "ENQUEUED", "queue_name": "q", "app_version": None, "name": "wf"}
    message = still_waiting_message(status, 30)
    assert message.startswith("Gave up waiting: DBOS workflow is still ENQUEUED after 30s: no DBOS worker")
    assert "any version" in message and message.endswith("(workflow w1)") and "None" not in message
    assert event_missing_message("w1", "k", "SUCCESS") == (
        "DBOS workflow ended SUCCESS without publishing event 'k' (workflow w1)"
    )


def test_progress_line_reads_as_documented() -> None:
    counts = {"SUCCESS": 6190, "ERROR": 20, "PENDING": 1000, "ENQUEUED": 2790}
    assert batch_progress_message(10000, counts) == "6,210/10,000 ended: 6,190 SUCCESS, 20 ERROR; 3,790 pending"
    assert batch_progress_message(3, {"ENQUEUED": 3}, 31.2) == "0/3 ended after 31s: none yet; 3 pending"


def test_a_stream_value_is_one_line_and_a_long_one_is_cut_with_a_marker() -> None:
    assert stream_value_line("progress", 12, {"done": 1}) == "stream 'progress' #12: {\"done\": 1}"
    assert stream_value_line("k", 0, "two\nlines\r") == "stream 'k' #0: two\\nlines\\r"
    cut = stream_value_line("k", 3, "x" * 50, limit=10)
    assert cut == "stream 'k' #3: xxxxxxxxxx… [cut: 50 chars]"
    assert stream_value_line("k", 3, "x" * 10, limit=10).endswith(": xxxxxxxxxx")
