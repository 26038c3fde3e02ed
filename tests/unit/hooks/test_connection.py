"""The dbos connection's settings (dbos_airflow/hooks/connection.py): validated by field name, no password shown."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from dbos_orchestrator.exceptions import DBOSOptionsError

from dbos_airflow.hooks.connection import DBOSConnectionSettings


def _conn(**fields: Any) -> Any:
    base = {"conn_id": "c", "host": "h", "port": None, "login": "u", "password": "pw", "schema": "db_dbos_sys"}
    return SimpleNamespace(**{**base, **fields}, extra_dejson=fields.pop("extra", {}))


def test_connection_settings_are_validated_by_name() -> None:
    settings = DBOSConnectionSettings.from_connection(_conn())
    assert settings.system_database_url.startswith("postgresql://u:pw@h:5432/db_dbos_sys")
    assert "pw" not in repr(settings) and settings.allow_pickle is False
    assert DBOSConnectionSettings.from_connection(_conn(extra={"allow_pickle": "true"})).allow_pickle
    with pytest.raises(DBOSOptionsError, match="unknown extra field.*allow_pickles"):
        DBOSConnectionSettings.from_connection(_conn(extra={"allow_pickles": True}))
    with pytest.raises(DBOSOptionsError, match="mysql.*must be a postgresql:// or sqlite:///"):
        DBOSConnectionSettings.from_connection(_conn(extra={"system_database_url": "mysql://h/db"}))
