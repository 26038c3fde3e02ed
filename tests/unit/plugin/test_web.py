"""The plugin's same-origin check (dbos_airflow/plugin/web.py): every forged origin gets one 403."""

from __future__ import annotations

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from dbos_airflow.plugin.web import CSRF_HEADER, check_same_origin

HOST = "127.0.0.1:8080"


def _request(origin: str | None, host: str = HOST) -> Request:
    headers = [(b"host", host.encode()), (CSRF_HEADER.lower().encode(), b"1"), (b"content-type", b"application/json")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    scope = {"type": "http", "method": "POST", "scheme": "http", "path": "/dbos/workflow", "headers": headers}
    return Request(scope)


@pytest.mark.parametrize(
    "origin",
    [
        f"http://{HOST}.evil.example",  # our host with a suffix: the port is not a number
        f"http://{HOST}x",
        "http://127.0.0.1:99999",  # a port out of range
        "http://[::1",  # not a URL at all
        "https://evil.example",
        f"https://{HOST}",  # another scheme
        "null",
    ],
)
def test_forged_origin_is_a_403_not_a_crash(origin: str) -> None:
    with pytest.raises(HTTPException) as refused:
        check_same_origin(_request(origin))
    assert refused.value.status_code == 403 and refused.value.detail == "cross-origin action refused"


@pytest.mark.parametrize("origin", [None, f"http://{HOST}", f"HTTP://{HOST}/"])
def test_our_own_origin_passes(origin: str | None) -> None:
    check_same_origin(_request(origin))


def test_a_malformed_host_header_refuses_every_origin() -> None:
    with pytest.raises(HTTPException) as refused:
        check_same_origin(_request(f"http://{HOST}", host=f"{HOST}.evil.example"))
    assert refused.value.status_code == 403
