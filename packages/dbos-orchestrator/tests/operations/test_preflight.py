"""What the enqueue check says about a queue or version (no database: the sentences and modes)."""

from __future__ import annotations

import pytest
from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.operations.preflight import Targets, _queue_problem, _version_problem, check_on_unknown

KNOWN = Targets(queues=frozenset({"orders", "refunds"}), versions=("v3", "v2", "v1"))


def test_a_typo_names_the_closest_registered_queue_and_all_of_them() -> None:
    sentence, known = _queue_problem("ordres", KNOWN, "db:5432/x")  # type: ignore[misc]
    assert known
    assert "queue_name='ordres' is not a registered DBOS queue on db:5432/x (did you mean 'orders'?)" in sentence
    assert "registered queues: orders, refunds" in sentence and "stay ENQUEUED" in sentence


def test_registered_and_internal_queues_pass_and_no_rows_means_it_cannot_tell() -> None:
    assert _queue_problem("orders", KNOWN, "t") is None
    assert _queue_problem("_dbos_internal_queue", KNOWN, "t") is None
    sentence, known = _queue_problem("orders", Targets(frozenset(), ()), "t")  # type: ignore[misc]
    assert not known and sentence.startswith("cannot check queue_name='orders'")


def test_an_unknown_version_names_the_latest() -> None:
    sentence, known = _version_problem("v4", KNOWN, "t")  # type: ignore[misc]
    assert known and "versions: v3 (latest), v2, v1" in sentence
    assert _version_problem("v2", KNOWN, "t") is None
    assert not _version_problem("v2", Targets(frozenset(), ()), "t")[1]  # type: ignore[index]


@pytest.mark.parametrize("value", ["warn", "fail", "ignore"])
def test_modes(value: str) -> None:
    assert check_on_unknown("on_unknown_queue", value) == value


def test_an_unknown_mode_is_named() -> None:
    with pytest.raises(DBOSOptionsError, match="on_unknown_version='strict' must be one of 'warn', 'fail', 'ignore'"):
        check_on_unknown("on_unknown_version", "strict")
