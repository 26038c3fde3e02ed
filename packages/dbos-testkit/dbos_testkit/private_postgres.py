"""A private Postgres server a test may stop, restart and take down (never the shared one).

    with PrivatePostgres() as pg:        # initdb + pg_ctl start on a free loopback port
        url = pg.url("mydb")             # postgresql://postgres@127.0.0.1:<port>/mydb (created)
        pg.restart(fast=True)            # pg_ctl restart -m fast
        pg.stop(mode="immediate"); time.sleep(5); pg.start()

    PrivatePostgres(tls=make_certificates(dir), hba=["hostssl all all 127.0.0.1/32 cert"])
                                         # ssl=on with that server certificate; hba lines go first

Uses ``initdb``/``pg_ctl`` from /usr/lib/postgresql/*/bin (or ``$PATH``); as root, runs them as
the ``postgres`` user. Trust authentication (unless ``hba`` says otherwise), loopback only, data in a temp dir removed
at exit. Databases are created over the Unix socket, so any ``hba`` rule for TCP applies to tests only.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from dbos_testkit.tls_certs import Certificates


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found (install the PostgreSQL server binaries)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """:param tls: certificates to serve TLS with (``ssl = on``); :param hba: pg_hba.conf lines put first."""

    def __init__(self, *, tls: Certificates | None = None, hba: list[str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="private-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\n"
                "fsync = off\nsynchronous_commit = off\nmax_connections = 200\n"
            )
            if tls is not None:
                for name, source in (
                    ("server.crt", tls.server_cert),
                    ("server.key", tls.server_key),
                    ("ca.crt", tls.ca),
                ):
                    shutil.copy(source, self.data / name)
                    (self.data / name).chmod(0o600)
                    if self._as_postgres:
                        shutil.chown(self.data / name, "postgres", "postgres")
                conf.write(
                    "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'ca.crt'\n"
                )
        if hba:
            hba_file = self.data / "pg_hba.conf"
            hba_file.write_text("\n".join(hba) + "\n" + hba_file.read_text())

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", "postgres", "--", *argv] if self._as_postgres else list(argv)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stdout}\n{done.stderr}")
        return done

    def start(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, fast: bool = True) -> None:
        self._run(
            _bin("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-m",
            "fast" if fast else "immediate",
            "-w",
            "-t",
            "60",
            "restart",
        )

    def url(self, database: str = "postgres", *, create: bool = True) -> str:
        url = f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
        if create and database != "postgres":
            with self.admin() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
        return url

    def admin(self, database: str = "postgres") -> sa.Connection:
        """An autocommit connection over the Unix socket (closing it disposes of its engine)."""
        engine = sa.create_engine(
            f"postgresql+psycopg://postgres@/{database}?host={self.dir}&port={self.port}",
            isolation_level="AUTOCOMMIT",
            poolclass=sa.pool.NullPool,
        )
        return engine.connect()

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
