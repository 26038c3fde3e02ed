"""The documented enqueue options onto DBOS' own (dbos_orchestrator/options.py)."""

from __future__ import annotations

import pytest
from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.options import qualified_workflow_name, to_dbos_options


def test_documented_options_map_onto_dbos_options() -> None:
    mapped = to_dbos_options({"workflow_name": "monthly", "queue_name": "q", "workflow_class_name": "Reports"})
    assert mapped == {"workflow_name": "Reports.monthly", "queue_name": "q", "class_name": "Reports"}
    assert qualified_workflow_name("Reports.monthly", "Reports") == "Reports.monthly"
    with pytest.raises(DBOSOptionsError, match="unknown EnqueueOptions key.*'queue'"):
        to_dbos_options({"workflow_name": "w", "queue": "q"})
    with pytest.raises(DBOSOptionsError, match="missing required key.*queue_name"):
        to_dbos_options({"workflow_name": "w"})
