"""The documented ``DBOSClient`` API, restored on top of the maintained ``dbos.DBOSClient``.

dbos 3.x made the constructor keyword-only (``system_database_url=``) and renamed the
``workflow_class_name`` enqueue option to ``class_name``. This module keeps the documented
API working as written::

    client = DBOSClient(os.environ["DBOS_DATABASE_URL"])   # system DB: <database>_dbos_sys
    handle = client.enqueue({"queue_name": "q", "workflow_name": "wf"}, 21)
    handle.get_result()

Everything else is ``dbos.DBOSClient`` unchanged: this class only translates arguments and
turns driver errors into :mod:`dbos_orchestrator.exceptions` that name what is wrong. Used on its
own it also decodes like dbos: rows tagged ``py_pickle`` are unpickled. Inside Airflow, the
hook and everything built on it read stored values through :mod:`dbos_orchestrator.store.values`
instead, which refuses pickles unless the connection opts in. No Airflow import here.
"""

from __future__ import annotations

import logging
import math
import pickle
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypedDict

import dbos
import sqlalchemy as sa
from dbos import DBOSPortableJSONSerializer, WorkflowSerializationFormat

from dbos_orchestrator.exceptions import (
    DBOSConnectionError,
    DBOSOptionsError,
    DBOSSchemaMissingError,
    DBOSSerializationError,
    replacing,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dbos import WorkflowHandle, WorkflowHandleAsync

__all__ = ["DBOSClient", "EnqueueOptions", "hide_password", "system_database_url_for", "with_connect_timeout"]

SYSTEM_DATABASE_SUFFIX = "_dbos_sys"
DEFAULT_CONNECT_TIMEOUT = 10


class _RequiredEnqueueOptions(TypedDict):
    workflow_name: str
    queue_name: str


class EnqueueOptions(_RequiredEnqueueOptions, total=False):
    """The documented enqueue options plus every optional key of dbos' own ``EnqueueOptions``.

    ``workflow_class_name`` is the documented name for dbos' ``class_name``. Keys not listed
    here (or in the installed dbos version) are rejected instead of silently ignored.
    """

    workflow_class_name: str
    app_version: str
    workflow_id: str
    workflow_id_reuse_policy: str
    workflow_timeout: float
    delay_seconds: float
    deduplication_id: str
    duplication_policy: str
    priority: int
    queue_partition_key: str
    authenticated_user: str
    authenticated_roles: list[str]
    serialization_type: WorkflowSerializationFormat
    class_name: str
    instance_name: str
    attributes: dict[str, Any]
    application_name: str | None


# Documented-style or dbos-style options: both are accepted wherever dbos takes its own.
AnyEnqueueOptions = EnqueueOptions | dbos.EnqueueOptions

_DBOS_KEYS = frozenset(dbos.EnqueueOptions.__required_keys__ | dbos.EnqueueOptions.__optional_keys__)
VALID_ENQUEUE_KEYS = frozenset(_DBOS_KEYS | {"workflow_class_name"})


# Options that dbos stores as text: anything else (e.g. an id rendered natively as an int) is refused.
_TEXT_KEYS = frozenset(
    "workflow_name queue_name workflow_class_name class_name instance_name app_version workflow_id deduplication_id "
    "queue_partition_key authenticated_user application_name".split()
)


def to_dbos_options(options: AnyEnqueueOptions | dict[str, Any]) -> dbos.EnqueueOptions:
    """Validate documented-style options and map them onto dbos' ``EnqueueOptions``."""
    if not isinstance(options, dict):
        raise DBOSOptionsError(f"EnqueueOptions must be a dict, got {type(options).__name__}")
    unknown = sorted(set(options) - VALID_ENQUEUE_KEYS)
    if unknown:
        raise DBOSOptionsError(
            f"unknown EnqueueOptions key(s) {', '.join(map(repr, unknown))}; "
            f"valid keys are: {', '.join(sorted(VALID_ENQUEUE_KEYS))}"
        )
    missing = [k for k in ("workflow_name", "queue_name") if not options.get(k)]
    if missing:
        raise DBOSOptionsError(f"EnqueueOptions is missing required key(s): {', '.join(missing)}")
    mapped: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    for key in sorted(set(mapped) & _TEXT_KEYS):
        if not isinstance(mapped[key], str):
            raise DBOSOptionsError(
                f"EnqueueOptions {key}={mapped[key]!r} must be a string, got {type(mapped[key]).__name__}"
            )
    for key in ("workflow_timeout", "delay_seconds"):
        value = mapped.get(key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if value is not None and (not number or value < 0 or (key == "workflow_timeout" and value == 0)):
            rule = "a positive" if key == "workflow_timeout" else "a non-negative"
            raise DBOSOptionsError(f"EnqueueOptions {key}={value!r} must be {rule} number of seconds")
    class_name = mapped.pop("workflow_class_name", None)
    if class_name is not None:
        if mapped.get("class_name", class_name) != class_name:
            raise DBOSOptionsError(
                f"EnqueueOptions gives workflow_class_name={class_name!r} and "
                f"class_name={mapped['class_name']!r}; give one of them"
            )
        mapped["class_name"] = class_name
    if mapped.get("class_name"):
        mapped["workflow_name"] = qualified_workflow_name(mapped["workflow_name"], mapped["class_name"])
    return mapped  # type: ignore[return-value]


def qualified_workflow_name(workflow_name: str, class_name: str) -> str:
    """The name dbos registers a class's workflow method under: ``Class.method``.

    The documented form gives the method's name and its class separately
    (``workflow_name="monthly", workflow_class_name="Reports"``); dbos registers and looks up
    ``Reports.monthly``. A name already qualified by the class is kept. Not covered: a method
    registered under an explicit ``@DBOS.workflow(name=...)``: give that name and no class.
    """
    prefix = f"{class_name}."
    return workflow_name if workflow_name.startswith(prefix) else prefix + workflow_name


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


class _InitializingOnce(logging.Filter):
    """Lets dbos' "Initializing DBOS system database ..." lines through once per process.

    Every client dbos-airflow creates logs it (a task makes several: enqueue, wait, result), so a
    task log showed it three times. Clients created while :attr:`quiet` is set (the triggerer's
    shared waiter, which serves many tasks) never log it.
    """

    PREFIXES = ("Initializing DBOS system database", "DBOS system database engine parameters")
    seen: set[str] = set()
    local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        prefix = next((p for p in self.PREFIXES if str(record.msg).startswith(p)), None)
        if prefix is None:
            return True
        if getattr(self.local, "quiet", False) or prefix in _InitializingOnce.seen:
            return False
        _InitializingOnce.seen.add(prefix)
        return True

    @classmethod
    def install(cls) -> None:
        logger = logging.getLogger("dbos")
        if not any(isinstance(f, cls) for f in logger.filters):
            logger.addFilter(cls())


_InitializingOnce.install()


@contextmanager
def quiet_initialization() -> Iterator[None]:
    """Clients created inside this block (on this thread) do not log dbos' initialization line."""
    _InitializingOnce.local.quiet = True
    try:
        yield
    finally:
        _InitializingOnce.local.quiet = False


class DBOSClient(dbos.DBOSClient):
    """``DBOSClient(database_url, *, system_database=None)``, as documented.

    :param database_url: URL of the application database; the system database is
        ``<its database>_dbos_sys`` on the same server. A ``sqlite:///path`` URL is used as
        the system database itself.
    :param system_database: name of the system database when it is not the default.
    :param system_database_url: the dbos 3.x form: the system database's own URL
        (Postgres or ``sqlite:///path``). Give it instead of ``database_url``.
    :param dbos_kwargs: any other keyword of ``dbos.DBOSClient`` (``dbos_system_schema``,
        ``application_name``, ``use_listen_notify``, ``retry_connection_errors``, ...).
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        system_database: str | None = None,
        system_database_url: str | None = None,
        **dbos_kwargs: Any,
    ) -> None:
        if database_url and system_database_url:
            raise DBOSOptionsError("give either database_url or system_database_url, not both")
        if system_database_url is None:
            if not database_url:
                raise DBOSOptionsError("DBOSClient needs a database_url (application database) or system_database_url")
            system_database_url = system_database_url_for(database_url, system_database)
        elif system_database:
            raise DBOSOptionsError("system_database goes with database_url, not system_database_url")
        self.system_database_url = with_connect_timeout(system_database_url)
        url = sa.make_url(self.system_database_url)
        self.schema = None if url.get_backend_name() == "sqlite" else dbos_kwargs.get("dbos_system_schema") or "dbos"
        self._describer = _ErrorDescriber(url, self.schema)
        try:
            super().__init__(system_database_url=self.system_database_url, **dbos_kwargs)
        except Exception as exc:  # noqa: BLE001 - re-raised, described when we can
            raise self._describer.describe(exc) or exc from None
        sa.event.listen(self._sys_db.engine, "handle_error", self._describer.on_error, retval=True)

    @property
    def target(self) -> str:
        """``host:port/database`` (or the SQLite path) of the system database, without password."""
        return self._describer.target

    @property
    def system_database_engine(self) -> sa.Engine:
        """The client's SQLAlchemy engine (schema already mapped), for read-only probes."""
        return self._sys_db.engine

    # -- the documented methods: options mapped, arguments checked ------------------------

    def enqueue(self, options: AnyEnqueueOptions, *args: Any, **kwargs: Any) -> WorkflowHandle[Any]:
        mapped = to_dbos_options(options)
        try:
            return super().enqueue(mapped, *args, **kwargs)
        except (TypeError, ValueError, AttributeError, pickle.PicklingError) as exc:
            raise _explain_encoding(exc, mapped, args, kwargs) from exc

    async def enqueue_async(self, options: AnyEnqueueOptions, *args: Any, **kwargs: Any) -> WorkflowHandleAsync[Any]:
        mapped = to_dbos_options(options)
        try:
            return await super().enqueue_async(mapped, *args, **kwargs)
        except (TypeError, ValueError, AttributeError, pickle.PicklingError) as exc:
            raise _explain_encoding(exc, mapped, args, kwargs) from exc

    def enqueue_in_transaction(
        self, conn_or_session: Any, options: AnyEnqueueOptions, *args: Any, **kwargs: Any
    ) -> WorkflowHandle[Any]:
        mapped = to_dbos_options(options)
        try:
            return super().enqueue_in_transaction(conn_or_session, mapped, *args, **kwargs)
        except (TypeError, ValueError, AttributeError, pickle.PicklingError) as exc:
            raise _explain_encoding(exc, mapped, args, kwargs) from exc

    def send(self, destination_id: str, message: Any, *args: Any, **kwargs: Any) -> None:
        try:
            super().send(destination_id, message, *args, **kwargs)
        except (TypeError, ValueError, AttributeError, pickle.PicklingError) as exc:
            raise _explain_message(exc, destination_id, message, args, kwargs) from exc

    async def send_async(self, destination_id: str, message: Any, *args: Any, **kwargs: Any) -> None:
        try:
            await super().send_async(destination_id, message, *args, **kwargs)
        except (TypeError, ValueError, AttributeError, pickle.PicklingError) as exc:
            raise _explain_message(exc, destination_id, message, args, kwargs) from exc


def _explain_message(
    exc: Exception, destination_id: str, message: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Exception:
    """Name the message that the chosen serialization cannot encode (or return ``exc``)."""
    topic = args[0] if args else kwargs.get("topic")
    portable = kwargs.get("serialization_type") == WorkflowSerializationFormat.PORTABLE
    reason = encoding_problem(message, portable=portable)
    if reason is None:
        return exc
    return DBOSSerializationError(
        f"the message to DBOS workflow {destination_id} (topic {topic!r}) cannot be encoded as "
        f"{'portable JSON' if portable else 'pickle'}: {reason}; nothing was sent"
    )


def _explain_encoding(
    exc: Exception, options: dbos.EnqueueOptions, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Exception:
    """Name the first argument the chosen serialization cannot encode (or return ``exc``)."""
    portable = options.get("serialization_type") == WorkflowSerializationFormat.PORTABLE
    named = [(f"args[{i}]", v) for i, v in enumerate(args)] + [(f"kwargs[{k!r}]", v) for k, v in kwargs.items()]
    for where, value in named:
        reason = encoding_problem(value, portable=portable)
        if reason:
            return DBOSSerializationError(
                f"workflow {options.get('workflow_name')!r}: {where} cannot be encoded as "
                f"{'portable JSON' if portable else 'pickle'}: {reason}"
            )
    return exc


def encoding_problem(value: Any, *, portable: bool) -> str | None:
    """Why ``value`` cannot be serialized (portable JSON or pickle), or None if it can."""
    try:
        if portable:
            DBOSPortableJSONSerializer().serialize(value)
        else:
            pickle.dumps(value)
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return f"{type(exc).__name__}: {exc}"
    return None


class _ErrorDescriber:
    """Turns driver errors about reaching the system database into clear, password-free errors."""

    def __init__(self, url: sa.URL, schema: str | None) -> None:
        self._password = url.password
        if url.get_backend_name() == "sqlite":
            self.target = url.database or ":memory:"
        else:
            self.target = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"
        self._tables = f"{url.database}.{schema}" if schema else str(url.database)

    def _clean(self, text: str) -> str:
        return hide_password(text.strip(), self._password)

    def describe(self, exc: BaseException, *, connecting: bool = True) -> Exception | None:
        """A clear error for ``exc``, or None to let it through.

        :param connecting: the error happened while reaching the database (any driver
            ``OperationalError`` then means "cannot connect": refused, unresolvable host, bad
            password, missing database).
        """
        orig = getattr(exc, "orig", None) or exc
        text = str(orig)
        if ("does not exist" in text and "relation" in text) or "no such table" in text:
            where = self._tables if self._tables == self.target else f"{self._tables} (at {self.target})"
            return replacing(
                DBOSSchemaMissingError,
                exc,
                f"no DBOS system tables in {where}: launch the DBOS application against it once, "
                f"or check the database/schema name [{self._clean(text.splitlines()[0])}]",
            )
        if isinstance(exc, sa.exc.OperationalError) and (connecting or "connection" in text):
            return replacing(
                DBOSConnectionError,
                exc,
                f"cannot connect to the DBOS system database at {self.target}: {self._clean(text)}",
            )
        return None

    def on_error(self, ctx: sa.engine.ExceptionContext) -> Exception | None:
        if ctx.is_pre_ping:  # let the pool recover stale connections by itself
            return None
        exc = ctx.sqlalchemy_exception or ctx.original_exception
        return self.describe(exc, connecting=ctx.connection is None or ctx.is_disconnect)
