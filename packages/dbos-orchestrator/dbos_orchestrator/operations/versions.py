"""Application versions: list them (newest first, which is latest), promote one to latest (blue/green)
remembering the previous latest so a later task can roll back.

A workflow enqueued without ``app_version`` runs only on workers of the latest version; a version
exists only once a worker of it launched (turn4-facts B). DBOS' client writes
(``set_latest_application_version``) and reads (``list_application_versions``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbos_orchestrator.exceptions import DBOSOptionsError

if TYPE_CHECKING:
    from dbos_orchestrator.client import DBOSClient

__all__ = ["list_versions", "promote_version"]


def list_versions(client: DBOSClient) -> list[dict[str, Any]]:
    """Every registered version, newest first, with ``latest`` set on the first."""
    rows = client.list_application_versions()
    return [
        {
            "version_name": r["version_name"],
            "version_timestamp": r["version_timestamp"],
            "created_at": r["created_at"],
            "application_name": r.get("application_name"),
            "latest": i == 0,
        }
        for i, r in enumerate(rows)
    ]


def promote_version(client: DBOSClient, version_name: str, *, application_name: str | None = None) -> dict[str, Any]:
    """Make ``version_name`` the latest; returns ``{"latest": version_name, "previous": <the latest before>}``.

    A version already latest is left as it is and ``previous`` is the newest other version, so a retry
    reports what the first try replaced. An unknown version is an error listing the known ones (nothing
    written).
    """
    if not isinstance(version_name, str) or not version_name.strip():
        raise DBOSOptionsError(f"version_name={version_name!r} must be a non-empty string")
    versions = [v["version_name"] for v in list_versions(client)]
    if version_name not in versions:
        known = ", ".join(versions[:10]) or "none (no worker has launched)"
        raise DBOSOptionsError(
            f"version_name={version_name!r} is not a registered application version on {client.target}; known: {known}"
        )
    others = [v for v in versions if v != version_name]
    previous = others[0] if others else None
    if versions[0] != version_name:
        client.set_latest_application_version(version_name, application_name=application_name)
    from dbos_orchestrator.operations.preflight import forget_targets

    forget_targets(client)
    return {"latest": version_name, "previous": previous}
