"""libpq parameters on the system-database URL (dbos_orchestrator.libpq) and what TLS and pooler
errors mean (dbos_orchestrator.diagnostics). Pure logic and files, no database; both venvs."""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from dbos_orchestrator.diagnostics import ErrorDescriber, tls_problem
from dbos_orchestrator.exceptions import DBOSConnectionError, DBOSOptionsError
from dbos_orchestrator.libpq import SSL_MODES, check_params, check_url, pass_through_keywords, with_libpq_params

if TYPE_CHECKING:
    from pathlib import Path

URL = "postgresql://u:pw@db.example:5432/app_dbos_sys"
PEM = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"


def test_a_bad_sslmode_names_the_field_and_the_valid_values() -> None:
    with pytest.raises(DBOSOptionsError) as raised:
        check_params({"sslmode": "requir"}, "connection 'c': extra ")
    assert str(raised.value) == (
        "connection 'c': extra sslmode='requir' is not a TLS mode; use one of " + ", ".join(SSL_MODES)
    )


def test_libpq_keywords_pass_through_and_others_are_named() -> None:
    assert {"sslmode", "sslcrl", "target_session_attrs", "options"} <= pass_through_keywords()
    url = with_libpq_params(URL, {"sslmode": "require", "target_session_attrs": "read-write", "sslcert": None})
    query = sa.make_url(url).query
    assert query == {"sslmode": "require", "target_session_attrs": "read-write"}
    assert sa.make_url(url).password == "pw"
    with pytest.raises(DBOSOptionsError, match="sslmodes is not a libpq connection parameter"):
        check_params({"sslmodes": "require"})
    with pytest.raises(DBOSOptionsError, match="password is not a libpq"):  # the connection's own field
        check_params({"password": "x"})
    with pytest.raises(DBOSOptionsError, match="sslpassword is not supported"):  # would sit in the URL
        check_params({"sslpassword": "x"})


def test_pem_text_goes_to_a_private_file_and_only_its_path_into_the_url(tmp_path: Path) -> None:
    cert = tmp_path / "client.crt"
    cert.write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    url = with_libpq_params(URL, {"sslmode": "verify-full", "sslcert": str(cert), "sslkey": PEM})
    assert "BEGIN" not in url and "MIGHAgEA" not in url
    key_file = str(sa.make_url(url).query["sslkey"])
    assert open(key_file).read() == PEM
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(key_file)).st_mode) == 0o700
    again = with_libpq_params(URL, {"sslcert": str(cert), "sslkey": PEM})
    assert sa.make_url(again).query["sslkey"] == key_file  # one file per content per process


def test_bad_files_and_half_a_client_certificate_are_named(tmp_path: Path) -> None:
    with pytest.raises(DBOSOptionsError, match="sslrootcert: no file at '/nonexistent/ca.crt'"):
        check_params({"sslrootcert": "/nonexistent/ca.crt"})
    assert check_params({"sslrootcert": "system"}) == {"sslrootcert": "system"}  # libpq 16+: the OS store
    with pytest.raises(DBOSOptionsError, match="no -----END line"):
        check_params({"sslrootcert": "-----BEGIN CERTIFICATE-----\nabc"})
    with pytest.raises(DBOSOptionsError, match="sslkey is set but sslcert is not"):
        check_params({"sslkey": PEM})


def test_url_parameters_are_checked_and_sqlite_takes_none() -> None:
    with pytest.raises(DBOSOptionsError, match="sslmode='verify_full' is not a TLS mode"):
        check_url(URL + "?sslmode=verify_full")
    with pytest.raises(DBOSOptionsError, match="bogus is not a libpq"):
        check_url(URL + "?bogus=1")
    assert sa.make_url(check_url(URL + "?sslmode=require&connect_timeout=5")).query == {
        "sslmode": "require",
        "connect_timeout": "5",
    }
    with pytest.raises(DBOSOptionsError, match="only apply to a Postgres system database"):
        with_libpq_params("sqlite:////tmp/x.sqlite", {"sslmode": "require"})


def test_tls_and_pooler_errors_are_explained_without_the_password() -> None:
    describer = ErrorDescriber(sa.make_url(URL), "dbos")
    reason = (
        'connection failed: connection to server at "10.0.0.1", port 5432 failed: SSL error: certificate verify failed'
    )
    described = describer.describe(sa.exc.OperationalError("connect", {}, Exception(reason + " pw")))
    assert isinstance(described, DBOSConnectionError)
    text = str(described)
    assert text.startswith("TLS verification failed for the DBOS system database at db.example:5432/app_dbos_sys")
    assert "not signed by the trusted CA" in text and " pw" not in text
    assert tls_problem('server certificate for "x" does not match host name "y"') is not None
    assert tls_problem("password authentication failed for user") is None
    lost = sa.exc.ProgrammingError("SELECT", {}, Exception('prepared statement "_pg3_0" already exists'))
    explained = describer.describe(lost, connecting=False)
    assert explained is not None and "set transaction_pooling=true" in str(explained)
