"""libpq connection parameters on a system-database URL: TLS options and pass-through keywords.

Every connection the core opens (the client's pool, the shared waiter's LISTEN/poll connection,
the bulk writer, completion feeds, reads) comes from the one system-database URL, so a parameter
put into its query reaches all of them. :func:`with_libpq_params` is the one place that checks
and adds them:

* ``sslmode`` must be one of libpq's modes (:data:`SSL_MODES`);
* ``sslrootcert``, ``sslcert``, ``sslkey`` are a path, or the PEM text itself, which is written
  to a private file (mode 0600, in a 0700 directory removed when the process exits) whose path
  goes into the URL, so key material is never in a URL, a log line or an error;
* any other keyword libpq accepts (``target_session_attrs``, ``sslcrl``, ...) passes through;
  anything else is an error naming it. Secrets other than the key file (``sslpassword``,
  OAuth/SCRAM secrets) are refused: a URL would carry them into logs.

No Airflow or Prefect import.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dbos_orchestrator.exceptions import DBOSOptionsError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "FILE_FIELDS",
    "SSL_MODES",
    "TLS_FIELDS",
    "is_pem",
    "libpq_keywords",
    "pass_through_keywords",
    "pem_file",
    "with_libpq_params",
]

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
TLS_FIELDS = ("sslmode", "sslrootcert", "sslcert", "sslkey")
FILE_FIELDS = ("sslrootcert", "sslcert", "sslkey", "sslcrl")
# Keywords the connection's own fields give (host, port, login, password, database), and secrets
# that would sit in the URL (a URL is logged, shown and stored in places a password field is not).
OWN_FIELDS = frozenset({"host", "hostaddr", "port", "user", "password", "dbname"})
SECRET_KEYWORDS = frozenset({"sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key"})

_PEM_DIR: str | None = None
_PEM_LOCK = threading.Lock()


@cache
def libpq_keywords() -> frozenset[str]:
    """Every connection keyword the installed libpq accepts (``PQconndefaults``)."""
    from psycopg import pq

    return frozenset(option.keyword.decode() for option in pq.Conninfo.get_defaults())


def pass_through_keywords() -> frozenset[str]:
    """The libpq keywords a connection may add to the URL (its own fields and secrets excluded)."""
    return libpq_keywords() - OWN_FIELDS - SECRET_KEYWORDS


def is_pem(value: str) -> bool:
    """Whether ``value`` is PEM text (a certificate or key) rather than a path."""
    return value.lstrip().startswith("-----BEGIN ")


def pem_file(field: str, pem: str) -> str:
    """The path of a private file (0600) holding ``pem``; one file per content per process."""
    global _PEM_DIR
    with _PEM_LOCK:
        if _PEM_DIR is None or not os.path.isdir(_PEM_DIR):
            _PEM_DIR = tempfile.mkdtemp(prefix="dbos-tls-")  # 0700
            atexit.register(shutil.rmtree, _PEM_DIR, True)
        digest = hashlib.sha256(pem.encode()).hexdigest()[:24]
        path = os.path.join(_PEM_DIR, f"{field}-{digest}.pem")
        if not os.path.exists(path):
            fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(pem.strip() + "\n")
            os.replace(path + ".tmp", path)
        return path


def _file_value(field: str, value: str, where: str) -> str:
    if is_pem(value):
        if "-----END " not in value:
            raise DBOSOptionsError(f"{where}{field} looks like PEM text but has no -----END line (cut short?)")
        return pem_file(field, value)
    if field == "sslrootcert" and value == "system":  # libpq 16+: the operating system's CA store
        return value
    path = os.path.expanduser(value)
    if not os.path.isfile(path):
        raise DBOSOptionsError(f"{where}{field}: no file at {path!r}; give the path of a PEM file, or the PEM itself")
    return path


def check_params(params: Mapping[str, Any], where: str = "") -> dict[str, str]:
    """``params`` checked and made libpq-ready (PEM text replaced by private file paths).

    :param where: prefix of error messages (e.g. ``"connection 'dbos_default': "``).
    """
    checked: dict[str, str] = {}
    allowed = pass_through_keywords()
    for name, raw in params.items():
        if raw is None or raw == "":
            continue
        value = str(raw).strip()
        if name in SECRET_KEYWORDS:
            raise DBOSOptionsError(
                f"{where}{name} is not supported: it would sit in the database URL; "
                "use an unencrypted key in a secret sslkey field instead"
            )
        if name not in allowed:
            raise DBOSOptionsError(f"{where}{name} is not a libpq connection parameter")
        if name == "sslmode" and value not in SSL_MODES:
            raise DBOSOptionsError(f"{where}sslmode={value!r} is not a TLS mode; use one of {', '.join(SSL_MODES)}")
        if name in FILE_FIELDS:
            value = _file_value(name, value, where)
        checked[name] = value
    if ("sslcert" in checked) != ("sslkey" in checked):
        given, missing = ("sslcert", "sslkey") if "sslcert" in checked else ("sslkey", "sslcert")
        raise DBOSOptionsError(f"{where}{given} is set but {missing} is not: a client certificate needs both")
    return checked


def with_libpq_params(system_database_url: str, params: Mapping[str, Any], where: str = "") -> str:
    """The URL with ``params`` (checked by :func:`check_params`) in its query; given values win.

    A SQLite URL takes none: giving any is an error.
    """
    checked = check_params(params, where)
    if not checked:
        return system_database_url
    url = sa.make_url(system_database_url)
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise DBOSOptionsError(
            f"{where}{', '.join(sorted(checked))} only apply to a Postgres system database, not {url.drivername}"
        )
    return url.update_query_dict(checked).render_as_string(hide_password=False)


def check_url(system_database_url: str, where: str = "") -> str:
    """A URL's own query parameters checked like :func:`check_params` (PEM text in it is refused)."""
    url = sa.make_url(system_database_url)
    if url.get_backend_name() not in ("postgresql", "postgres") or not url.query:
        return system_database_url
    query = {k: (v if isinstance(v, str) else v[-1]) for k, v in url.query.items()}
    for name in FILE_FIELDS:
        if name in query and is_pem(query[name]):
            raise DBOSOptionsError(f"{where}{name} in a URL must be a path, not PEM text")
    return url.update_query_dict(check_params(query, where)).render_as_string(hide_password=False)
