"""The dbos-airflow Airflow plugin: a "DBOS workflow" tab on task instances and a "DBOS" page.

Registered by installing the package (entry point ``airflow.plugins``); nothing to copy into
``plugins/``. Every Airflow process imports this module, so it stays cheap: the FastAPI app
(mounted on the API server at ``/dbos``) is built only when the API server asks for it.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/dbos"


class DBOSPlugin(AirflowPlugin):
    """Airflow's UI for DBOS workflows; see :mod:`dbos_airflow.plugin.app` for the routes."""

    name = "dbos"
    external_views = [  # noqa: RUF012 - AirflowPlugin's own attribute style
        {
            "name": "DBOS workflow",
            "href": URL_PREFIX + "/ti/{DAG_ID}/{TASK_ID}/{MAP_INDEX}/{RUN_ID}",
            "destination": "task_instance",
            "url_route": "dbos_workflow",
        },
        {
            "name": "DBOS",
            "href": URL_PREFIX + "/",
            "destination": "nav",
            "url_route": "dbos",
            "category": "browse",
        },
    ]

    @cached_property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """The app is built on first access (by the API server), not at import."""
        from dbos_airflow.plugin.app import create_app

        return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "DBOS workflows"}]
