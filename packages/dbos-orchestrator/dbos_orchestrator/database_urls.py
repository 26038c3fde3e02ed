"""Database URL rules: the system database beside the application database, connect timeouts, no password shown."""

from __future__ import annotations

import math

import sqlalchemy as sa

from dbos_orchestrator.exceptions import DBOSOptionsError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "SYSTEM_DATABASE_SUFFIX",
    "hide_password",
    "system_database_url_for",
    "with_connect_timeout",
]

SYSTEM_DATABASE_SUFFIX = "_dbos_sys"
DEFAULT_CONNECT_TIMEOUT = 10


def system_database_url_for(database_url: str, system_database: str | None = None) -> str:
    """The documented rule: the system database lives beside the application database.

    ``postgresql://u:p@h:5432/app`` gives ``postgresql://u:p@h:5432/app_dbos_sys`` (or the
    database named by ``system_database``). A SQLite URL is already the system database.
    """
    try:
        url = sa.make_url(database_url)
    except sa.exc.ArgumentError as exc:
        raise DBOSOptionsError(f"database_url is not a database URL: {exc}") from None
    if url.get_backend_name() == "sqlite":
        if system_database:
            raise DBOSOptionsError("system_database cannot be combined with a SQLite database_url")
        return database_url
    if not url.database and not system_database:
        raise DBOSOptionsError(
            f"database_url {url.render_as_string(hide_password=True)} names no database; "
            "add one (…/myapp) or pass system_database="
        )
    name = system_database or f"{url.database}{SYSTEM_DATABASE_SUFFIX}"
    return url.set(database=name).render_as_string(hide_password=False)


def with_connect_timeout(system_database_url: str, seconds: float = DEFAULT_CONNECT_TIMEOUT) -> str:
    """The URL with libpq's ``connect_timeout`` set, unless it has one (SQLite URLs unchanged).

    libpq wants whole seconds and reads 0 as "wait forever": round up, never down.
    """
    url = sa.make_url(system_database_url)
    if url.get_backend_name() == "sqlite" or "connect_timeout" in url.query:
        return system_database_url
    url = url.update_query_dict({"connect_timeout": str(math.ceil(seconds))})
    return url.render_as_string(hide_password=False)


def hide_password(text: str, password: str | None) -> str:
    """``text`` with every occurrence of ``password`` replaced by ``***``."""
    return text.replace(password, "***") if password else text
