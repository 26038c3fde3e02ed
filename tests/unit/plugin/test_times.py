"""A workflow's times in the DBOS view (dbos_airflow/plugin/times.py): what the database knows."""

from __future__ import annotations

from dbos_orchestrator.store.steps import StoredStep

from dbos_airflow.plugin.times import Clock, instant, workflow_duration

T = 1_796_620_321_000  # 2026-12-07 05:12:01.000 UTC
SQLITE, POSTGRES = Clock.of_dialect("sqlite"), Clock.of_dialect("postgresql")


def _step(start: int, end: int) -> StoredStep:
    return StoredStep(1, "step", None, None, None, start, end)


def test_a_whole_second_on_sqlite_is_shown_to_the_second() -> None:
    assert instant(T, SQLITE) == "2026-12-07 05:12:01 UTC (to the second)"
    assert instant(T + 248, SQLITE) == "2026-12-07 05:12:01.248 UTC"  # it has milliseconds: they are real
    assert instant(T, POSTGRES) == "2026-12-07 05:12:01.000 UTC"
    assert instant(None, SQLITE) == ""


def test_a_duration_kept_to_the_second_is_a_range_never_zero() -> None:
    """The issue's case: created and ended in the same second, the first step 248 ms after that
    second began, ending at 400 ms: it ran at least 152 ms, at most 999 ms; never "0.000 s"."""
    shown = workflow_duration(T, T, SQLITE, [_step(T + 248, T + 400)])
    assert shown == "0.152 s to 0.999 s (times kept to the second)"
    assert workflow_duration(T, T, SQLITE) == "0.000 s to 0.999 s (times kept to the second)"
    assert workflow_duration(T, T + 3000, SQLITE) == "2.001 s to 3.999 s (times kept to the second)"


def test_steps_out_of_the_workflows_seconds_do_not_narrow_it() -> None:
    """Steps whose clock disagrees with the database's (before creation, after the end's second)
    are not used: the range stays what the database's own times allow."""
    shown = workflow_duration(T, T + 1000, SQLITE, [_step(T - 50, T + 2500)])
    assert shown == "0.001 s to 1.999 s (times kept to the second)"


def test_milliseconds_give_one_number() -> None:
    assert workflow_duration(T + 1, T + 1235, SQLITE) == "1.234 s"
    assert workflow_duration(T, T + 1234, POSTGRES) == "1.234 s"
    assert workflow_duration(T, None, SQLITE) == ""
