"""The ``DBOSSystemDatabase`` block: where a DBOS application keeps its workflows."""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from prefect.blocks.abstract import CredentialsBlock
from pydantic import Field, SecretStr, field_validator, model_validator

from prefect_dbos._core import (
    DBOSClient,
    DBOSOptionsError,
    WorkflowService,
    get_waiter,
    quiet_initialization,
    serialization_format,
)

if TYPE_CHECKING:
    from dbos import WorkflowSerializationFormat

    from prefect_dbos._core import DBOSWaiter

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
        status = database.service().status("order-42")
        ```
    """

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
        return self

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
        """Keyword arguments of the core's client (Prefect owns retries)."""
        url = self.url()
        if url.startswith("postgresql") or url.startswith("postgres://"):
            sep = "&" if "?" in url else "?"
            url = f"{url}{sep}connect_timeout={int(self.connect_timeout)}" if "connect_timeout=" not in url else url
        return {
            "system_database_url": url,
            "dbos_system_schema": self.dbos_system_schema,
            "retry_connection_errors": False,
        }

    def key(self) -> str:
        """A digest naming this database (no secret in it): one client and one waiter per key per process."""
        raw = f"{self.url()}|{self.dbos_system_schema}"
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

    def service(self, log: Any = None) -> WorkflowService:
        """The core's workflow service on this database (safe reads follow :attr:`allow_pickle`).

        :param log: logger for its lines (default: the ``prefect_dbos`` logger).
        """
        return WorkflowService(
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
