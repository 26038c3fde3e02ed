"""The one stand-in for Airflow's task instance that the tests hand operators as ``context["ti"]``.

docs/architecture.md, "Tests": unit tests may fake Airflow's context; nothing fakes DBOS or Postgres.
"""

from __future__ import annotations

import secrets
from typing import Any


class FakeTI:
    """Just what the operators read from ``context["ti"]``: the ids of the try, and XCom pushes."""

    def __init__(self, task_id: str = "t", try_number: int = 1, *, dag_id: str = "unit") -> None:
        self.dag_id, self.run_id, self.task_id = dag_id, f"run-{secrets.token_hex(6)}", task_id
        self.map_index, self.try_number = -1, try_number
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value
