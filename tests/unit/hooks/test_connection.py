"""The dbos connection's settings (dbos_airflow/hooks/connection.py): validated by field name, no password shown;
TLS, libpq and pooler settings (issue 29)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from airflow.sdk import Connection
from dbos_orchestrator.exceptions import DBOSOptionsError

from dbos_airflow.get_provider_info import get_provider_info
from dbos_airflow.hooks.connection import EXTRA_FIELDS, DBOSConnectionSettings

if TYPE_CHECKING:
    from pathlib import Path

KEY = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"


def settings(uri: str | None = None, **extra: object) -> DBOSConnectionSettings:
    if uri is not None:
        return DBOSConnectionSettings.from_connection(Connection.from_uri(uri, conn_id="c"))
    conn = Connection(
        conn_id="c", conn_type="dbos", host="db", login="u", password="pw", schema="s", extra=json.dumps(extra)
    )
    return DBOSConnectionSettings.from_connection(conn)


def test_the_issue_uri_with_sslmode_works() -> None:
    s = settings("dbos://user:pw@db.example:5432/app_dbos_sys?sslmode=require&target_session_attrs=read-write")
    url = sa.make_url(s.system_database_url)
    assert url.host == "db.example" and url.database == "app_dbos_sys" and url.password == "pw"
    assert url.query["sslmode"] == "require" and url.query["target_session_attrs"] == "read-write"
    assert "pw" not in repr(s)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"sslmode": "requir"}, "connection 'c': extra sslmode='requir' is not a TLS mode; use one of disable, allow,"),
        ({"sslmod": "require"}, "unknown extra field(s) sslmod; valid extras are: system_database_url"),
        ({"sslrootcert": "/nonexistent/ca.pem"}, "extra sslrootcert: no file at '/nonexistent/ca.pem'"),
        ({"sslkey": KEY}, "extra sslkey is set but sslcert is not"),
        ({"transaction_pooling": "true", "use_listen_notify": "true"}, "cannot both be true"),
        ({"transaction_pooling": "perhaps"}, "transaction_pooling"),
        ({"system_database_url": "postgresql://u@h/d?sslmode=on"}, "extra sslmode='on' is not a TLS mode"),
    ],
)
def test_bad_values_are_named(extra: dict[str, object], message: str) -> None:
    with pytest.raises(DBOSOptionsError) as raised:
        settings(**extra)
    assert message in str(raised.value)
    assert KEY.splitlines()[1] not in str(raised.value)


def test_pem_extras_become_private_files_and_airflow_masks_the_key(tmp_path: Path) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    cert = tmp_path / "client.crt"
    cert.write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    s = settings(sslmode="verify-full", sslcert=str(cert), sslkey=KEY, transaction_pooling=True)
    shown = [repr(s), s.system_database_url, json.dumps(s.client_kwargs())]
    assert not any(KEY.splitlines()[1] in text for text in shown), shown
    assert open(str(sa.make_url(s.system_database_url).query["sslkey"])).read() == KEY
    assert s.client_kwargs()["transaction_pooling"] is True
    assert KEY.splitlines()[1] not in str(redact(f"key is {KEY}"))


def test_the_connection_form_has_every_extra() -> None:
    [conn_type] = get_provider_info()["connection-types"]
    assert set(conn_type["conn-fields"]) == set(EXTRA_FIELDS)
    assert conn_type["conn-fields"]["sslkey"]["schema"]["format"] == "password"
    assert None in conn_type["conn-fields"]["sslmode"]["schema"]["enum"]


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
