"""Test certificates made with ``openssl``: a CA, a server certificate for 127.0.0.1/localhost, a client one.

    certs = make_certificates(directory)           # ca.crt, server.crt/.key, client.crt/.key
    other = make_certificates(directory / "other") # a second CA (for "wrong CA" tests)

EC P-256 keys (fast to make), valid for two days. The client certificate's CN is ``postgres``,
the user Postgres' ``cert`` authentication maps it to.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*argv: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *argv], cwd=cwd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(argv)} failed: {done.stderr}")


def _signed(directory: Path, name: str, subject: str, extensions: str) -> None:
    _openssl("req", "-new", *KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=directory)
    (directory / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext", cwd=directory,
    )  # fmt: skip
    (directory / f"{name}.key").chmod(0o600)


def make_certificates(directory: Path, *, client_user: str = "postgres") -> Certificates:
    """A CA and the server and client certificates it signs, in ``directory`` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", *KEY, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=dbos-airflow test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _signed(directory, "server", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _signed(directory, "client", f"/CN={client_user}", "extendedKeyUsage=clientAuth\n")
    return Certificates(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )
