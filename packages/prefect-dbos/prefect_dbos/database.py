"""The ``DBOSSystemDatabase`` block: where a DBOS application keeps its workflows."""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from dbos_orchestrator.client import DBOSClient
from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.init_log import quiet_initialization
from dbos_orchestrator.libpq import check_url, with_libpq_params
from dbos_orchestrator.serialization import serialization_format
from dbos_orchestrator.service import DBOSService
from dbos_orchestrator.waiting.waiter import get_waiter
from prefect.blocks.abstract import CredentialsBlock
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

if TYPE_CHECKING:
    from dbos import WorkflowSerializationFormat
    from dbos_orchestrator.waiting.waiter import DBOSWaiter

DOCS_URL = "https://github.com/dbos-inc/dbos-airflow/tree/main/packages/prefect-dbos#blocks"
LOGO_URL = "https://avatars.githubusercontent.com/u/122426524?s=200&v=4"

# How a Prefect user allows pickles: the end of the core's refusal of a pickled value.
PICKLE_HINT = "set allow_pickle=True on the DBOSSystemDatabase block to decode pickled values (runs their code)"

_CLIENTS: dict[str, DBOSClient] = {}
_CLIENTS_LOCK = threading.Lock()


class DBOSSystemDatabase(CredentialsBlock):
    """
    The system database of a DBOS application: a Postgres URL or its parts (or a SQLite file).

    Values stored by the application are decoded as DBOS portable JSON; pickled values are
    refused unless ``allow_pickle`` is set, because loading a pickle runs code chosen by whoever
    wrote the row.

    Example:
        Load a saved system database and read a workflow's status:
        ```python
        from prefect_dbos import DBOSSystemDatabase

        database = DBOSSystemDatabase.load("BLOCK_NAME")
        status = database.service().get_workflow_status_with_fork("order-42")
        ```
    """

    # A bad URL's error names the field and the reason; the input (URL, password, key) is never echoed.
    model_config = ConfigDict(**CredentialsBlock.model_config, hide_input_in_errors=True)

    _block_type_name = "DBOS System Database"
    _logo_url = LOGO_URL  # type: ignore[assignment]
    _documentation_url = DOCS_URL  # type: ignore[assignment]
    _description = "The system database of a DBOS application, where its durable workflows are stored."

    system_database_url: SecretStr | None = Field(
        default=None,
        description=(
            "URL of the system database (postgresql://user:pw@host:5432/app_dbos_sys or sqlite:///path); "
            "overrides host, port, username, password and database."
        ),
    )
    host: str | None = Field(default=None, description="Host of the Postgres server.")
    port: int = Field(default=5432, description="Port of the Postgres server.")
    username: str | None = Field(default=None, description="Postgres user.")
    password: SecretStr | None = Field(default=None, description="Password of the Postgres user.")
    database: str | None = Field(default=None, description="Name of the system database (e.g. app_dbos_sys).")
    dbos_system_schema: str = Field(default="dbos", description="Schema of the DBOS system tables (Postgres).")
    allow_pickle: bool = Field(
        default=False,
        description="Decode values the application stored as Python pickles (runs their code; off by default).",
    )
    serialization: Literal["portable", "pickle"] = Field(
        default="portable",
        description="How arguments and messages are written: portable JSON (any language) or Python pickle.",
    )
    connect_timeout: float = Field(default=10, gt=0, description="Seconds to wait when connecting.")
    transaction_pooling: bool = Field(
        default=False,
        description=(
            "The database is reached through a pooler in transaction mode (PgBouncer pool_mode=transaction): "
            "no prepared statements, no LISTEN (waits poll)."
        ),
    )
    application_name: str | None = Field(
        default=None,
        description=(
            "The DBOS application this block acts for; set it when several applications share the system "
            "database, so the workflows, queues and schedules it creates are that application's."
        ),
    )
    use_listen_notify: bool = Field(
        default=False,
        description=(
            "Wake event and stream reads of the client by Postgres notifications (LISTEN) instead of polling; "
            "only for a system database DBOS created with notifications on. Not with transaction_pooling."
        ),
    )
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = Field(
        default=None,
        description="libpq TLS mode; managed Postgres needs require or (better) verify-full with sslrootcert.",
    )
    sslrootcert: str | None = Field(
        default=None, description="Path of the CA bundle that signed the server's certificate, or the PEM itself."
    )
    sslcert: str | None = Field(
        default=None, description="Path or PEM of the client certificate (servers with hostssl ... cert)."
    )
    sslkey: SecretStr | None = Field(
        default=None,
        description="Path or PEM of the client certificate's unencrypted key (PEM is written to a private file).",
    )
    console_url: str | None = Field(
        default=None,
        description="Link to a workflow in a console, with {workflow_id} in it (e.g. https://console/workflows/{workflow_id}).",
    )

    trace_url: str | None = Field(
        default=None,
        description="Link to a trace in your tracing UI, with {trace_id} in it (e.g. http://localhost:16686/trace/{trace_id}).",
    )

    @field_validator("console_url")
    @classmethod
    def _console_url_has_placeholder(cls, value: str | None) -> str | None:
        if value is not None and "{workflow_id}" not in value:
            raise ValueError(f"console_url must contain {{workflow_id}}, got {value!r}")
        return value

    @field_validator("trace_url")
    @classmethod
    def _trace_url_has_placeholder(cls, value: str | None) -> str | None:
        if value is not None and "{trace_id}" not in value:
            raise ValueError(f"trace_url must contain {{trace_id}}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> DBOSSystemDatabase:
        if self.system_database_url is not None:
            url = self.system_database_url.get_secret_value()
            if not url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://", "sqlite:///")):
                raise ValueError(
                    "system_database_url must be a postgresql:// or sqlite:/// URL (the system databases DBOS supports)"
                )
        elif not self.host or not self.database:
            missing = " and ".join(name for name in ("host", "database") if not getattr(self, name))
            raise ValueError(f"give system_database_url, or host and database ({missing} missing)")
        if self.use_listen_notify and self.transaction_pooling:
            raise ValueError(
                "use_listen_notify and transaction_pooling cannot both be true: "
                "LISTEN does not survive a pooler in transaction mode"
            )
        return self

    @field_validator("system_database_url")
    @classmethod
    def _url_parameters(cls, value: SecretStr | None) -> SecretStr | None:
        """The URL's own libpq parameters (``?sslmode=...``), named when bad (the error shows no URL)."""
        if value is not None:
            try:
                check_url(value.get_secret_value())
            except DBOSOptionsError as exc:
                raise ValueError(str(exc)) from None
        return value

    def _tls(self) -> dict[str, str | None]:
        return {
            "sslmode": self.sslmode,
            "sslrootcert": self.sslrootcert,
            "sslcert": self.sslcert,
            "sslkey": self.sslkey.get_secret_value() if self.sslkey is not None else None,
        }

    # -- what the tasks use --------------------------------------------------------------

    def url(self) -> str:
        """The system database's URL (with the password)."""
        if self.system_database_url is not None:
            return self.system_database_url.get_secret_value()
        auth = quote(self.username or "", safe="")
        if self.password is not None:
            auth += ":" + quote(self.password.get_secret_value(), safe="")
        return f"postgresql://{auth}{'@' if auth else ''}{self.host}:{self.port}/{self.database}"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the core's client (Prefect owns retries), with the TLS fields in the URL."""
        url = with_libpq_params(check_url(self.url()), self._tls())
        if url.startswith("postgresql") or url.startswith("postgres://"):
            sep = "&" if "?" in url else "?"
            url = f"{url}{sep}connect_timeout={int(self.connect_timeout)}" if "connect_timeout=" not in url else url
        return {
            "system_database_url": url,
            "dbos_system_schema": self.dbos_system_schema,
            "transaction_pooling": self.transaction_pooling,
            "application_name": self.application_name,
            "use_listen_notify": self.use_listen_notify,
            "retry_connection_errors": False,
        }

    def key(self) -> str:
        """A digest naming this database (no secret in it): one client and one waiter per key per process."""
        tls = sorted(self._tls().items(), key=str)
        raw = (
            f"{self.url()}|{self.dbos_system_schema}|{tls}|{self.transaction_pooling}"
            f"|{self.application_name}|{self.use_listen_notify}"
        )
        return "dbos-" + hashlib.sha256(raw.encode()).hexdigest()[:16]

    @property
    def serialization_type(self) -> WorkflowSerializationFormat:
        """The ``dbos.WorkflowSerializationFormat`` of :attr:`serialization`."""
        return serialization_format(self.serialization)

    def get_client(self) -> DBOSClient:
        """This process's client of the database (created on first use, shared by every task)."""
        key = self.key()
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(key)
            if client is None:
                with quiet_initialization():
                    client = _CLIENTS[key] = DBOSClient(**self.client_kwargs())
            return client

    def service(self, log: Any = None) -> DBOSService:
        """The core's workflow service on this database (safe reads follow :attr:`allow_pickle`).

        :param log: logger for its lines (default: the ``prefect_dbos`` logger).
        """
        return DBOSService(
            self.get_client(),
            allow_pickle=self.allow_pickle,
            serialization=self.serialization_type,
            log=log or logging.getLogger("prefect_dbos"),
            pickle_hint=PICKLE_HINT,
        )

    async def waiter(self) -> DBOSWaiter:
        """This process's shared waiter of the database: one statement per tick for all waits."""
        kwargs = self.client_kwargs()

        async def client_kwargs() -> dict[str, Any]:
            return kwargs

        return await get_waiter(self.key(), client_kwargs)

    def link_for(self, workflow_id: str) -> str | None:
        """The console link of a workflow, when :attr:`console_url` is set."""
        if self.console_url is None:
            return None
        return self.console_url.replace("{workflow_id}", quote(workflow_id, safe=""))


def close_clients() -> None:
    """Destroy this process's clients (tests; a long-lived process that is done)."""
    with _CLIENTS_LOCK:
        clients = list(_CLIENTS.values())
        _CLIENTS.clear()
    for client in clients:
        client.destroy()


def check_option(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    """A clear error naming the parameter when ``value`` is not one of ``allowed``."""
    if value not in allowed:
        raise DBOSOptionsError(f"{name}={value!r}; use one of {allowed}")
