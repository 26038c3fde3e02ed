"""System database URLs (dbos_orchestrator/database_urls.py): derived, with a connect timeout, passwords hidden."""

from __future__ import annotations

from dbos_orchestrator.database_urls import hide_password, system_database_url_for, with_connect_timeout


def test_urls_derive_the_system_database_and_a_connect_timeout() -> None:
    assert system_database_url_for("postgresql://u:p@h:5/app") == "postgresql://u:p@h:5/app_dbos_sys"
    assert with_connect_timeout("postgresql://h/db", 2.5).endswith("connect_timeout=3")  # rounded up
    assert with_connect_timeout("sqlite:///x.sqlite") == "sqlite:///x.sqlite"
    assert hide_password("could not log in with s3cret", "s3cret") == "could not log in with ***"
