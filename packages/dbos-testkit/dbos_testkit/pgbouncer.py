"""A private PgBouncer (Debian's ``pgbouncer``) in front of a Postgres server, on a free port.

    with PgBouncer(upstream_port=pg.port, pool_mode="transaction") as bouncer:
        url = bouncer.url("mydb")     # postgresql://postgres@127.0.0.1:<port>/mydb

Trust authentication, every database of the upstream server, its own temp dir removed at exit;
the process (its own process group) is stopped by :meth:`close`, also when a test fails. As
root it runs as the ``postgres`` user (PgBouncer refuses to run as root).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from dbos_testkit.child_process import ChildProcess
from dbos_testkit.private_postgres import _free_port


class PgBouncer:
    def __init__(self, *, upstream_port: int, pool_mode: str = "transaction", pool_size: int = 20) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.port = _free_port()
        self.pool_mode = pool_mode
        (self.dir / "userlist.txt").write_text('"postgres" ""\n')
        # dbos and the waiter put libpq `options` (timeouts) in the startup packet; PgBouncer 1.18
        # refuses unknown startup parameters unless told to ignore them (the README says so too).
        (self.dir / "pgbouncer.ini").write_text(
            f"[databases]\n* = host=127.0.0.1 port={upstream_port}\n\n[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir / 'userlist.txt'}\n"
            f"pool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\nmax_client_conn = 500\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
        )
        argv = ["/usr/sbin/pgbouncer", str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            for name in ("userlist.txt", "pgbouncer.ini"):
                shutil.chown(self.dir / name, "postgres", "postgres")
            argv = ["runuser", "-u", "postgres", "--", *argv]
        self.process: ChildProcess | None = None
        self._argv = argv

    def start(self) -> None:
        self.process = ChildProcess(f"pgbouncer:{self.port}", self._argv, dict(os.environ))
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.proc.poll() is not None or time.monotonic() > deadline:
                    lines = "\n".join(self.process.lines[-20:])
                    self.close()
                    raise RuntimeError(f"pgbouncer did not start:\n{lines}") from None
                time.sleep(0.1)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def close(self) -> None:
        if self.process is not None:
            if self.process.proc.poll() is None:
                try:  # SIGINT: PgBouncer's immediate shutdown (SIGTERM waits for its clients to leave)
                    os.killpg(self.process.proc.pid, signal.SIGINT)
                    self.process.proc.wait(5)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
            self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PgBouncer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
