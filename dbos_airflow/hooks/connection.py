"""The settings of an Airflow connection of type ``dbos``, validated.

Host, port, login, password and schema (the DBOS system database's name) plus the extras
below. TLS (``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``: a path or the PEM itself) and
any other libpq connection parameter (also as the URI's query, ``dbos://...?sslmode=require``)
go into the system-database URL through :mod:`dbos_orchestrator.libpq`, so every connection the
provider opens uses them. Every bad value raises :class:`DBOSOptionsError` naming the connection
and the field.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from dbos_orchestrator.database_urls import hide_password, with_connect_timeout
from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.forms import as_bool
from dbos_orchestrator.libpq import TLS_FIELDS, check_url, is_pem, pass_through_keywords, with_libpq_params
from dbos_orchestrator.serialization import SERIALIZATIONS, serialization_format

if TYPE_CHECKING:
    from airflow.sdk import Connection
    from dbos import WorkflowSerializationFormat
__all__ = [
    "EXTRA_FIELDS",
    "DBOSConnectionSettings",
    "unparsable_env_connection",
]

EXTRA_FIELDS = (
    "system_database_url",
    "dbos_system_schema",
    "application_name",
    "connect_timeout",
    "serialization",
    "allow_pickle",
    "use_listen_notify",
    "transaction_pooling",
    *TLS_FIELDS,
    "console_url",
    "trace_url",
)


@dataclass(frozen=True)
class DBOSConnectionSettings:
    """What a ``dbos`` connection says, validated. ``repr`` never shows the password."""

    system_database_url: str
    dbos_system_schema: str = "dbos"
    application_name: str | None = None
    connect_timeout: float = 10
    serialization: str = "portable"
    use_listen_notify: bool = False
    allow_pickle: bool = False
    transaction_pooling: bool = False

    def __repr__(self) -> str:
        shown = sa.make_url(self.system_database_url).render_as_string(hide_password=True)
        return f"DBOSConnectionSettings({shown}, schema={self.dbos_system_schema!r})"

    @classmethod
    def from_connection(cls, conn: Connection) -> DBOSConnectionSettings:
        extra = {k: v for k, v in _extra_object(conn).items() if v not in (None, "")}
        libpq_params = {k: v for k, v in extra.items() if k in TLS_FIELDS or k in pass_through_keywords()}
        unknown = sorted(set(extra) - set(EXTRA_FIELDS) - set(libpq_params))
        if unknown:
            raise DBOSOptionsError(
                f"connection {conn.conn_id!r}: unknown extra field(s) {', '.join(unknown)}; "
                f"valid extras are: {', '.join(EXTRA_FIELDS)} and libpq connection parameters "
                "(e.g. sslcrl, target_session_attrs)"
            )
        libpq_params.pop("connect_timeout", None)  # an extra of its own, checked below
        if isinstance(libpq_params.get("sslkey"), str) and is_pem(libpq_params["sslkey"]):
            from airflow.sdk.log import mask_secret

            mask_secret(libpq_params["sslkey"])  # Airflow's logs redact it wherever it would appear
        serialization = str(extra.get("serialization", "portable")).lower()
        if serialization not in SERIALIZATIONS:
            raise DBOSOptionsError(
                f"connection {conn.conn_id!r}: serialization={serialization!r}; use one of {SERIALIZATIONS}"
            )
        try:
            timeout = float(extra.get("connect_timeout", 10))
        except (TypeError, ValueError):
            timeout = -1
        if timeout <= 0:
            raise DBOSOptionsError(
                f"connection {conn.conn_id!r}: connect_timeout={extra.get('connect_timeout')!r} "
                "must be a positive number of seconds"
            )
        url = extra.get("system_database_url")
        if url is None:
            if not conn.schema:
                raise DBOSOptionsError(
                    f"connection {conn.conn_id!r} names no database: set its Database field "
                    "(the DBOS system database, e.g. myapp_dbos_sys) or the system_database_url extra"
                )
            url = sa.URL.create(
                "postgresql",
                username=conn.login or None,
                password=conn.password or None,
                host=conn.host or "localhost",
                port=conn.port or 5432,
                database=conn.schema,
            ).render_as_string(hide_password=False)
        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError:
            raise DBOSOptionsError(
                f"connection {conn.conn_id!r}: extra system_database_url is not a database URL; "
                "use postgresql://user:password@host:5432/myapp_dbos_sys or sqlite:////path/app.sqlite"
            ) from None
        if parsed.get_backend_name() not in ("postgresql", "sqlite"):
            raise DBOSOptionsError(
                f"connection {conn.conn_id!r}: system_database_url "
                f"{parsed.render_as_string(hide_password=True)} must be a postgresql:// or sqlite:/// URL "
                "(the system databases DBOS supports)"
            )
        where = f"connection {conn.conn_id!r}: extra "
        url = with_connect_timeout(with_libpq_params(check_url(url, where), libpq_params, where), timeout)
        listen = as_bool(f"{where}use_listen_notify", extra.get("use_listen_notify", False))
        pooling = as_bool(f"{where}transaction_pooling", extra.get("transaction_pooling", False))
        if listen and pooling:
            raise DBOSOptionsError(
                f"connection {conn.conn_id!r}: extras use_listen_notify and transaction_pooling cannot both be "
                "true: LISTEN does not survive a pooler in transaction mode"
            )
        return cls(
            system_database_url=url,
            dbos_system_schema=str(extra.get("dbos_system_schema", "dbos")),
            application_name=extra.get("application_name"),
            connect_timeout=timeout,
            serialization=serialization,
            use_listen_notify=listen,
            transaction_pooling=pooling,
            allow_pickle=as_bool(f"connection {conn.conn_id!r}: extra allow_pickle", extra.get("allow_pickle", False)),
        )

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`DBOSClient` for these settings (Airflow owns retries)."""
        return {
            "system_database_url": self.system_database_url,
            "dbos_system_schema": self.dbos_system_schema,
            "application_name": self.application_name,
            "use_listen_notify": self.use_listen_notify,
            "transaction_pooling": self.transaction_pooling,
            "retry_connection_errors": False,
        }

    @property
    def serialization_type(self) -> WorkflowSerializationFormat:
        """The ``dbos.WorkflowSerializationFormat`` of the connection's ``serialization``."""
        return serialization_format(self.serialization)


def _extra_object(conn: Connection) -> dict[str, Any]:
    """The connection's extras; an extra that is not a JSON object is an error, never ignored.

    (Airflow itself logs unparsable extras and carries on with none, which would silently drop
    e.g. ``system_database_url`` or ``dbos_system_schema``.)
    """
    raw = getattr(conn, "extra", None)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        extra = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise DBOSOptionsError(
            f"connection {conn.conn_id!r}: extra is not valid JSON ({exc.msg} at position {exc.pos})"
        ) from None
    if not isinstance(extra, dict):
        raise DBOSOptionsError(
            f"connection {conn.conn_id!r}: extra must be a JSON object of fields ({', '.join(EXTRA_FIELDS)}), "
            f"got a {type(extra).__name__}"
        )
    return extra


def unparsable_env_connection(conn_id: str) -> Exception | None:
    """Why ``AIRFLOW_CONN_<ID>`` is set but yields no connection (Airflow then says "not defined").

    The reason never contains the connection's password.
    """
    name = f"AIRFLOW_CONN_{conn_id.upper()}"
    value = os.environ.get(name)
    if not value:
        return None
    from airflow.sdk import Connection

    password = None
    try:
        if value.lstrip().startswith("{"):
            password = (json.loads(value) or {}).get("password")
            Connection.from_json(value, conn_id=conn_id)
        else:
            match = re.search(r"://[^/@]*?:([^/@]*)@", value)
            password = match.group(1) if match else None
            Connection.from_uri(value, conn_id=conn_id)
    except Exception as exc:  # noqa: BLE001 - the parse error is the answer
        reason = hide_password(f"{type(exc).__name__}: {exc}", str(password) if password else None)
        return DBOSOptionsError(
            f"connection {conn_id!r}: {name} is set but is not a valid connection ({reason}); use the URI form "
            "dbos://user:password@host:5432/myapp_dbos_sys or the JSON form"
        )
    return None
