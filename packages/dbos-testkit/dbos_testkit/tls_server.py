"""A private Postgres that speaks only TLS, with certificates made by ``openssl`` (issue 29's proofs).

    with tls_server(directory, "tls_dbos_sys") as tls:
        worker_url = tls.url("postgres", **tls.client_certificate_query())   # verify-full + a client certificate
        conn_url = tls.url("app_user", sslmode="verify-full", sslrootcert=str(tls.certs.ca))
        tls.provider_connections()                                           # pg_stat_ssl of every TCP connection

pg_hba.conf refuses every TCP connection without TLS; the user ``postgres`` must also present a
client certificate (``hostssl ... cert``), the user ``app_user`` only TLS. ``other`` is a second CA
that signed nothing the server serves (for "wrong CA" tests). The database is created; a DBOS worker
started on it migrates it.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from dbos_testkit.private_postgres import PrivatePostgres
from dbos_testkit.tls_certs import Certificates, make_certificates

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

HBA = [
    "hostssl all postgres 127.0.0.1/32 cert",
    "hostssl all all 127.0.0.1/32 trust",
    "host all all 127.0.0.1/32 reject",  # nothing reaches the server over TCP without TLS
]


@dataclass
class TLSServer:
    pg: PrivatePostgres
    certs: Certificates
    other: Certificates
    database: str

    @property
    def port(self) -> int:
        return self.pg.port

    def url(self, user: str, **query: str) -> str:
        base = f"postgresql://{user}@127.0.0.1:{self.pg.port}/{self.database}"
        return base + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")

    def client_certificate_query(self) -> dict[str, str]:
        """verify-full with the CA, the client certificate and its key, as paths."""
        return {
            "sslmode": "verify-full",
            "sslrootcert": str(self.certs.ca),
            "sslcert": str(self.certs.client_cert),
            "sslkey": str(self.certs.client_key),
        }

    def client_certificate_pem(self) -> dict[str, str]:
        """The same as PEM text: the extras of a connection that carries its key material itself."""
        return {
            "sslmode": "verify-full",
            "sslrootcert": self.certs.ca.read_text(),
            "sslcert": self.certs.client_cert.read_text(),
            "sslkey": self.certs.client_key.read_text(),
        }

    def key_lines(self) -> list[str]:
        """The base64 lines of the client key's PEM: a leak of the key, however quoted, contains one."""
        return self.certs.client_key.read_text().strip().splitlines()[1:-1]

    def provider_connections(self) -> list[tuple[str, bool, str, int]]:
        """(application_name, ssl, TLS version, client port) of every connection to the database over TCP."""
        with self.pg.admin() as conn:
            return [
                (str(name), bool(ssl), str(version), int(port))
                for name, ssl, version, port in conn.execute(
                    sa.text(
                        "SELECT a.application_name, s.ssl, coalesce(s.version, ''), a.client_port "
                        "FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                        "WHERE a.datname = :db AND a.client_addr IS NOT NULL"
                    ),
                    {"db": self.database},
                )
            ]


@contextmanager
def tls_server(directory: Path, database: str) -> Iterator[TLSServer]:
    """Certificates in ``directory``, the server started, ``database`` and the role ``app_user`` created."""
    certs, other = make_certificates(directory / "ca"), make_certificates(directory / "other-ca")
    pg = PrivatePostgres(tls=certs, hba=HBA)
    pg.start()
    try:
        pg.url(database)
        with pg.admin() as conn:
            conn.execute(sa.text("CREATE ROLE app_user LOGIN SUPERUSER"))
        yield TLSServer(pg, certs, other, database)
    finally:
        pg.close()
