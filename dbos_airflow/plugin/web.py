"""HTTP hygiene of the plugin's app: security headers, the same-origin check, its static files.

* Every answer carries ``X-Content-Type-Options: nosniff``, ``Cache-Control: no-store`` and a
  Content-Security-Policy allowing only the plugin's own script and style (``'self'``), no
  inline code, and framing by Airflow's own pages only (``frame-ancestors 'self'``).
* A state-changing request must carry ``X-DBOS-Airflow: 1`` and JSON, and its ``Origin`` (when
  sent) must be this server: the request's own scheme and ``Host``. Proxy headers count only as
  Airflow's API server trusts them (``airflow api-server --proxy-headers`` makes uvicorn rewrite
  the scheme from ``X-Forwarded-Proto``); ``X-Forwarded-Host`` is never read. Airflow's
  ``[api] base_url`` names the public origin behind a proxy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

if TYPE_CHECKING:
    from starlette.responses import Response

CSRF_HEADER = "X-DBOS-Airflow"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SecurityHeaders(BaseHTTPMiddleware):
    """The headers above on every answer of the app, errors included."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def _origin(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url``; None for anything that is not an origin (no scheme,
    no host, a port that is not a number in range such as ``http://host:8080.evil.example``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    host = (parts.hostname or "").lower()
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port and port != default else "")


def allowed_origins(request: Request) -> set[str]:
    """This server as the browser sees it: the request's scheme and Host, and ``[api] base_url``."""
    from airflow.configuration import conf

    found = {_origin(f"{request.url.scheme}://{request.headers.get('host', '')}")}
    base = conf.get("api", "base_url", fallback="") or ""
    if base:
        found.add(_origin(base))
    return {o for o in found if o}


def check_same_origin(request: Request) -> None:
    """Refuse a state-changing request a cross-site page could have sent."""
    if request.headers.get(CSRF_HEADER) != "1":
        raise HTTPException(403, f"missing the {CSRF_HEADER} header: actions come from the DBOS view")
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise HTTPException(415, "actions are JSON requests")
    origin = request.headers.get("origin")
    if origin is not None and _origin(origin) not in allowed_origins(request):
        raise HTTPException(403, "cross-origin action refused")
