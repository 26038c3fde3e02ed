"""The checks of queues, schedules and retention before anything is written (no database)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.operations.queues import check_queue_settings
from dbos_orchestrator.operations.retention import cutoff_ms
from dbos_orchestrator.operations.schedules import check_schedule, next_run
from dbos_orchestrator.options import to_dbos_options

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("q", {"worker_concurrency": 0}, "worker_concurrency=0 must be a whole number >= 1"),
        ("q", {"global_concurrency": True}, "global_concurrency=True"),
        ("q", {"limiter": {"limit": 2}}, "limiter={'limit': 2} must be"),
        ("q", {"partition_limiter": {"limit": 2, "period": -1}}, "partition_limiter.period=-1"),
        ("q", {"polling_interval_sec": 0}, "polling_interval_sec=0"),
        ("q", {"concurency": 1}, "unknown queue setting(s) concurency"),
        ("", {}, "queue name=''"),
        ("_dbos_internal_queue", {}, "DBOS' own queues"),
    ],
)
def test_bad_queue_settings_are_named(name: str, settings: dict[str, object], message: str) -> None:
    with pytest.raises(DBOSOptionsError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        check_queue_settings(name, settings)


def test_queue_settings_from_templates_are_numbers() -> None:
    assert check_queue_settings("q", {"global_concurrency": "4", "worker_concurrency": None}) == {
        "global_concurrency": 4
    }


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"schedule_name": "a", "workflow_name": "w", "schedule": "61 * * * *"},
            "schedule='61 * * * *' is not a valid",
        ),
        ({"schedule_name": "a", "workflow_name": "w"}, "schedule=None must be a non-empty string"),
        ({"schedule_name": "a", "workflow_name": "w", "schedule": "* * * * *", "cron_timezone": "X/Y"}, "X/Y"),
        ({"schedule_name": "a", "workflow_name": "w", "schedule": "* * * * *", "automatic_backfill": "yes"}, "yes"),
        ({"schedule_name": "a", "workflow_name": "w", "schedule": "* * * * *", "every": 1}, "unknown field(s) every"),
    ],
)
def test_bad_schedules_are_named_with_their_index(entry: dict[str, object], message: str) -> None:
    with pytest.raises(DBOSOptionsError) as err:
        check_schedule(entry, 2)
    assert str(err.value).startswith("schedules[2].") and message in str(err.value)


def test_next_run_follows_the_time_zone_and_six_field_crons() -> None:
    assert next_run("0 3 * * *", "Europe/Paris", NOW).isoformat() == "2026-06-02T03:00:00+02:00"
    assert next_run("30 * * * * *", None, NOW).isoformat() == "2026-06-01T12:00:30+00:00"  # seconds first


def test_cutoffs() -> None:
    assert cutoff_ms(timedelta(hours=1), now=NOW) == int((NOW - timedelta(hours=1)).timestamp() * 1000)
    assert cutoff_ms("3600", now=NOW) == cutoff_ms(3600, now=NOW)
    assert cutoff_ms("2026-05-01T00:00:00", now=NOW) == int(
        datetime(2026, 5, 1, tzinfo=timezone.utc).timestamp() * 1000
    )
    for bad, message in [
        ("2026-07-01", "is in the future"),
        (-1, "older_than=-1 seconds must be >= 0"),
        (timedelta(seconds=-1), "must not be negative"),
        ("yesterday", "older_than='yesterday' is not an ISO date-time"),
        ([1], "must be a date-time, a timedelta or seconds"),
    ]:
        with pytest.raises(DBOSOptionsError, match=message):
            cutoff_ms(bad, now=NOW)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"duplication_policy": "attach"}, "duplication_policy='attach' must be one of"),
        ({"duplication_policy": "return-existing"}, "needs a deduplication_id"),
        ({"authenticated_roles": "admin"}, "authenticated_roles='admin' must be a list of strings"),
        ({"attributes": {1: "x"}}, "attributes={1: 'x'} must be a dict with string keys"),
        ({"attributes": {"when": datetime(2026, 1, 1)}}, "attributes must be JSON values"),
    ],
)
def test_identity_and_dedup_options_are_named(extra: dict[str, object], message: str) -> None:
    with pytest.raises(DBOSOptionsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        to_dbos_options({"workflow_name": "w", "queue_name": "q", **extra})  # type: ignore[arg-type]


def test_queue_backlog_is_done_small_or_dequeued_since() -> None:
    """The backlog wait's rule (no database): done at most ``max_backlog`` active, or, waiting since a time,
    once a workflow of the queue was dequeued since; a bad ``dequeued_since_ms`` is named."""
    from dbos_orchestrator.operations.queues import QueueBacklog

    plain = QueueBacklog("q", 1)
    assert not plain.done()  # nothing read yet
    plain.update([("q", "PENDING", 2)], postgres=True)
    assert plain.counts["PENDING"] == 2 and not plain.done()
    plain.update([("q", "PENDING", 1)], postgres=True)
    assert plain.done()
    since = QueueBacklog("q", 0, 1_700_000_000_000)
    since.update([("q", "PENDING", 3), ("q", "dequeued", 0)], postgres=True)
    assert since.total == 3 and since.dequeued == 0 and not since.done()
    since.update([("q", "PENDING", 3), ("q", "dequeued", 1)], postgres=True)
    assert since.total == 3 and since.dequeued == 1 and since.done()
    for bad in (-1, "soon", 1.5, True):
        with pytest.raises(DBOSOptionsError, match="dequeued_since_ms=.* must be epoch milliseconds"):
            QueueBacklog("q", 0, bad)
