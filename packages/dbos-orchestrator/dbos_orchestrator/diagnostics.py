"""What a driver or serializer error means: clear, password-free errors naming the value, the database or the schema.

:class:`ErrorDescriber` turns driver errors about reaching the system database into
:class:`~dbos_orchestrator.exceptions.DBOSConnectionError` / ``DBOSSchemaMissingError``;
:func:`explain_encoding` / :func:`explain_message` name the argument or message the chosen
serialization cannot encode. Used by :class:`dbos_orchestrator.client.DBOSClient`.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from dbos import DBOSPortableJSONSerializer, WorkflowSerializationFormat

from dbos_orchestrator.database_urls import hide_password
from dbos_orchestrator.exceptions import DBOSConnectionError, DBOSSchemaMissingError, DBOSSerializationError, replacing

if TYPE_CHECKING:
    import dbos

__all__ = ["ErrorDescriber", "encoding_problem", "explain_encoding", "explain_message", "tls_problem"]


def explain_message(
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


def explain_encoding(
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


# libpq's words for a TLS handshake or verification failure (OpenSSL's reason, or libpq's own check).
TLS_FAILURES = (
    ("certificate verify failed", "the server's certificate is not signed by the trusted CA"),
    ("does not match host name", "the server's certificate does not name this host"),
    ("root certificate file", "the CA file (sslrootcert) cannot be read"),
    ("could not load private key", "the client key (sslkey) cannot be read"),
    ("could not open certificate file", "the client certificate (sslcert) cannot be read"),
    ("requires a valid client certificate", "the server requires a client certificate (sslcert, sslkey)"),
    ("server does not support SSL", "the server does not offer TLS"),
    ("SSL error", "the TLS handshake failed"),
)


def tls_problem(text: str) -> str | None:
    """What a driver error says went wrong with TLS, or None if it is not about TLS."""
    lowered = text.lower()
    return next((meaning for words, meaning in TLS_FAILURES if words.lower() in lowered), None)


class ErrorDescriber:
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
        if "prepared statement" in text and ("already exists" in text or "does not exist" in text):
            return replacing(
                DBOSConnectionError,
                exc,
                f"the DBOS system database at {self.target} is reached through a connection pooler in "
                "transaction mode (e.g. PgBouncer pool_mode=transaction), which loses prepared statements: "
                f"set transaction_pooling=true on the connection [{self._clean(text.splitlines()[0])}]",
            )
        if isinstance(exc, sa.exc.OperationalError) and (connecting or "connection" in text):
            tls = tls_problem(text)
            if tls is not None:
                return replacing(
                    DBOSConnectionError,
                    exc,
                    f"TLS verification failed for the DBOS system database at {self.target}: {tls}; check "
                    f"sslrootcert (the CA that signed the server's certificate) and sslmode [{self._clean(text)}]",
                )
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
