"""The DAG run's partition key as the workflow's queue_partition_key (dbos_airflow/contract/partitions.py).

Pure logic, with the context Airflow 3.3 hands a task (``partition_key``: the run's key or None); the
real run, worker and queue are tests/integration/test_partitions.py.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from dbos_orchestrator.exceptions import DBOSOptionsError

from dbos_airflow.contract.partitions import check_from_run, queue_partition_key
from dbos_airflow.operators.bulk import DBOSBulkEnqueueOperator
from dbos_airflow.operators.dbos import DBOSEnqueueOperator

LOG = logging.getLogger("test_partitions")


def key(context: dict[str, Any], given: Any = None, from_run: bool = True, dedup: Any = None) -> Any:
    return queue_partition_key(context, given=given, from_run=from_run, deduplication_id=dedup, log=LOG)


def test_the_runs_key_is_used_when_none_is_given(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "test_partitions"):
        assert key({"partition_key": "2026-12-07"}) == "2026-12-07"
        assert key({"partition_key": "2026-12-07"}, given="") == "2026-12-07"  # empty once rendered: not given
    assert caplog.messages == ["The workflow's queue_partition_key is the DAG run's partition key 2026-12-07"] * 2


def test_a_given_key_wins_and_a_run_without_a_key_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "test_partitions"):
        assert key({"partition_key": "2026-12-07"}, given="eu") == "eu"
        assert key({"partition_key": "2026-12-07"}, given=7) == 7  # a native int: _options makes it text
        assert key({"partition_key": None}) is None
        assert key({"partition_key": ""}, given="") == ""
        assert key({}) is None  # a context without the key (Airflow before 3.2, a hand-made context)
        assert key({"partition_key": "2026-12-07"}, from_run=False) is None  # the opt-out
    assert caplog.messages == []


def test_a_deduplication_id_gets_no_default_key_and_the_log_says_why(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "test_partitions"):
        assert key({"partition_key": "2026-12-07"}, dedup="refresh") is None
        assert key({"partition_key": "2026-12-07"}, dedup=12) is None
        assert key({"partition_key": "2026-12-07"}, dedup="") == "2026-12-07"  # empty: no deduplication
        assert key({"partition_key": "2026-12-07"}, given="eu", dedup="refresh") == "eu"  # given: DBOS' rules
    assert caplog.messages[0] == (
        "The DAG run's partition key 2026-12-07 is not the workflow's queue_partition_key: the task has a "
        "deduplication_id, and DBOS does not support deduplication on partitioned queues"
    )
    assert len(caplog.messages) == 3


def test_the_operators_take_the_opt_out_keyword_only_and_refuse_a_non_bool() -> None:
    assert check_from_run(False) is False
    with pytest.raises(DBOSOptionsError, match="partition_key_from_run must be True or False, got 'no'"):
        check_from_run("no")
    op = DBOSEnqueueOperator(task_id="t", workflow_name="w", queue_name="q", partition_key_from_run=False)
    assert op.partition_key_from_run is False
    with pytest.raises(DBOSOptionsError, match="partition_key_from_run must be True or False"):
        DBOSBulkEnqueueOperator(task_id="b", workflow_name="w", queue_name="q", items=[], partition_key_from_run=1)
    assert "queue_partition_key" in DBOSEnqueueOperator.template_fields


def test_the_options_of_both_enqueue_operators_carry_the_runs_key() -> None:
    context: Any = {"partition_key": "2026-12-07"}
    one = DBOSEnqueueOperator(task_id="t", workflow_name="w", queue_name="q")
    assert one._options(context, workflow_id="x")["queue_partition_key"] == "2026-12-07"
    assert "queue_partition_key" not in one._options(context, workflow_id="x", deduplication_id="d")
    bulk = DBOSBulkEnqueueOperator(task_id="b", workflow_name="w", queue_name="q", items=[[1]])
    assert bulk._options(context)["queue_partition_key"] == "2026-12-07"
    out = DBOSBulkEnqueueOperator(
        task_id="c", workflow_name="w", queue_name="q", items=[[1]], partition_key_from_run=False
    )
    assert "queue_partition_key" not in out._options(context)
