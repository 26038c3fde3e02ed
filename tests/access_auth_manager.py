"""A per-DAG auth manager for the access tests (tests/browser/test_ui_access.py), on Airflow's simple one.

The simple auth manager answers "may this user read DAGs?" (no DAG named) with the user's role
alone, so any viewer of one team "may read all DAGs". Per-DAG auth managers (FAB DAG-level
permissions, Keycloak, multi-team) do not: this one models them.

* DAGs: admin everything; others only DAGs of their own team (the DAG bundle's team, multi-team
  mode), read from ``viewer`` up, change from ``user`` up, and never "all DAGs" (no DAG named).
* Connections: read from ``viewer`` up, change from ``op`` up; a connection whose id ends in
  ``_beta_only`` is team beta's (env-var connections carry no team in Airflow). A user whose name
  ends in ``_simple`` gets the simple auth manager's own answer instead (read from ``op`` up: its
  viewers and users read no connection).
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

ORDER = {"viewer": 0, "user": 1, "op": 2, "admin": 3}


def _level(user: Any) -> int:
    return ORDER.get(str(user.role or "").lower(), -1)


class AccessAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        if _level(user) == ORDER["admin"]:
            return True
        if details is None or details.id is None:
            return False  # "all DAGs": a DAG-scoped user never has it
        team = details.team_name
        if team is None or team not in (user.teams or []):
            return False
        return _level(user) >= (ORDER["viewer"] if method == "GET" else ORDER["user"])

    def is_authorized_connection(self, *, method: Any, user: Any, details: Any = None) -> bool:
        if str(user.username).endswith("_simple"):
            return super().is_authorized_connection(method=method, user=user, details=details)
        if _level(user) == ORDER["admin"]:
            return True
        conn_id = getattr(details, "conn_id", None) or ""
        if conn_id.endswith("_beta_only") and "beta" not in (user.teams or []):
            return False
        return _level(user) >= (ORDER["viewer"] if method == "GET" else ORDER["op"])
