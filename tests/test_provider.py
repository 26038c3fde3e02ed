"""The installed provider as Airflow sees it: discovery, CLI, schemas, the connection form and its Test button."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import sqlalchemy as sa

import dbos_airflow
from dbos_airflow.get_provider_info import get_provider_info
from dbos_airflow.hooks.connection import EXTRA_FIELDS, DBOSConnectionSettings
from dbos_airflow.hooks.dbos import DBOSHook

if TYPE_CHECKING:
    from conftest import Worker

AIRFLOW = str(Path(sys.executable).parent / "airflow")
HOOK_CLASS = "dbos_airflow.hooks.dbos.DBOSHook"


def _airflow_json(*args: str) -> list[dict[str, Any]]:
    """Run ``airflow <args> -o json`` with this session's AIRFLOW_HOME and parse its output."""
    done = subprocess.run(
        [AIRFLOW, *args, "-o", "json"], env=os.environ.copy(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    start = done.stdout.index("[")  # skip any banner before the JSON
    rows: list[dict[str, Any]] = json.loads(done.stdout[start:])
    return rows


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((resources.files("airflow") / name).read_text())
    return schema


def _dbos_connection_type() -> dict[str, Any]:
    [conn_type] = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "dbos"]
    return conn_type


# -- discovery through the airflow CLI ------------------------------------------------------


def test_providers_list_shows_the_package() -> None:
    rows = {r["package_name"]: r for r in _airflow_json("providers", "list")}
    assert "dbos-airflow" in rows, f"dbos-airflow not among {sorted(rows)}"
    assert rows["dbos-airflow"]["version"] == dbos_airflow.__version__ == metadata.version("dbos-airflow")
    assert "DBOS" in rows["dbos-airflow"]["description"]


def test_providers_hooks_registers_the_dbos_connection_type() -> None:
    hooks = [h for h in _airflow_json("providers", "hooks") if h["connection_type"] == "dbos"]
    assert hooks == [
        {
            "connection_type": "dbos",
            "class": HOOK_CLASS,
            "conn_id_attribute_name": "dbos_conn_id",
            "package_name": "dbos-airflow",
            "hook_name": "DBOS",
        }
    ]


def test_providers_widgets_expose_every_extra_the_hook_accepts() -> None:
    widgets = {
        w["connection_parameter_name"]: w
        for w in _airflow_json("providers", "widgets")
        if w["package_name"] == "dbos-airflow"
    }
    assert set(widgets) == {f"extra__dbos__{name}" for name in EXTRA_FIELDS}
    assert {w["class"] for w in widgets.values()} == {HOOK_CLASS}
    assert widgets["extra__dbos__connect_timeout"]["field_type"] == ["integer", "null"]
    assert widgets["extra__dbos__use_listen_notify"]["field_type"] == ["boolean", "null"]
    behaviours = _airflow_json("providers", "behaviours")
    assert {"field_behaviours": "dbos"} in behaviours


def test_providers_manager_in_process() -> None:
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    assert pm.providers["dbos-airflow"].version == dbos_airflow.__version__
    info = pm.hooks["dbos"]
    assert info is not None
    assert (info.hook_class_name, info.connection_id_attribute_name, info.hook_name) == (
        HOOK_CLASS,
        "dbos_conn_id",
        "DBOS",
    )
    assert info.connection_testable  # the UI shows the Test button (when [core] test_connection is Enabled)
    behaviour = pm.field_behaviours["dbos"]
    assert behaviour["relabeling"]["schema"].startswith("Database")
    assert behaviour["placeholders"]["schema"] == "myapp_dbos_sys"


# -- metadata validity ---------------------------------------------------------------------


def test_provider_info_matches_airflows_schemas() -> None:
    info = get_provider_info()
    jsonschema.validate(info, _schema("provider_info.schema.json"))
    # provider.yaml's schema is the strict one for connection forms (conn-fields, ui-field-behaviour).
    strict = _schema("provider.yaml.schema.json")["properties"]["connection-types"]
    jsonschema.validate(info["connection-types"], strict)
    behaviour = _dbos_connection_type()["ui-field-behaviour"]
    jsonschema.validate(
        {
            "hidden_fields": behaviour.get("hidden-fields", []),
            "relabeling": behaviour.get("relabeling", {}),
            "placeholders": behaviour.get("placeholders", {}),
        },
        _schema("customized_form_field_behaviours.schema.json"),
    )


def test_provider_info_agrees_with_the_distribution_and_the_hook() -> None:
    info = get_provider_info()
    dist = metadata.distribution("dbos-airflow")
    assert info["package-name"] == dist.metadata["Name"]
    assert info["versions"][0] == dist.version
    [entry_point] = [ep for ep in dist.entry_points if ep.group == "apache_airflow_provider"]
    assert entry_point.load() is get_provider_info
    conn_type = _dbos_connection_type()
    assert conn_type["hook-class-name"] == HOOK_CLASS
    assert (conn_type["hook-name"], conn_type["connection-type"]) == (DBOSHook.hook_name, DBOSHook.conn_type)
    assert list(conn_type["conn-fields"]) == list(EXTRA_FIELDS)
    hook_modules = [m for h in info["hooks"] for m in h["python-modules"]]
    assert HOOK_CLASS.rsplit(".", 1)[0] in hook_modules


def test_form_defaults_are_valid_and_mean_what_the_hook_defaults_to() -> None:
    """A form saved untouched (every field at its default) behaves like an empty Extra."""
    from airflow.models.connection import Connection

    fields = _dbos_connection_type()["conn-fields"]
    defaults = {}
    for name, field in fields.items():
        jsonschema.Draft7Validator.check_schema(field["schema"])
        default = field["schema"].get("default")
        jsonschema.validate(default, field["schema"])
        defaults[name] = default
    base: dict[str, Any] = {
        "conn_type": "dbos",
        "host": "db.example",
        "port": 5432,
        "login": "u",
        "schema": "app_dbos_sys",
    }
    from_form = DBOSConnectionSettings.from_connection(Connection(conn_id="form", extra=json.dumps(defaults), **base))
    empty = DBOSConnectionSettings.from_connection(Connection(conn_id="empty", **base))
    assert from_form == empty
    assert (empty.serialization, empty.dbos_system_schema, empty.use_listen_notify) == ("portable", "dbos", False)


# -- the connection form and Test button over the real API (in a fresh process) -------------

_API_SCRIPT = """
import json, sys
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app

with TestClient(create_app("core")) as client:
    out = {"meta": client.get("/ui/connections/hook_meta").json(), "tests": []}
    for body in json.loads(sys.argv[1]):
        r = client.post("/api/v2/connections/test", json=body)
        out["tests"].append({"code": r.status_code, "body": r.json()})
print("RESULT " + json.dumps(out))
"""


def _api(bodies: list[dict[str, Any]], *, test_connection: str | None) -> tuple[dict[str, Any], str]:
    env = {
        **os.environ,
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    }
    env.pop("AIRFLOW__CORE__TEST_CONNECTION", None)
    if test_connection is not None:
        env["AIRFLOW__CORE__TEST_CONNECTION"] = test_connection
    done = subprocess.run(
        [sys.executable, "-c", _API_SCRIPT, json.dumps(bodies)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"API script failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    [line] = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    return json.loads(line[len("RESULT ") :]), done.stdout + done.stderr


def test_ui_form_and_test_button(
    airflow_db: Path, system_database_url: str, dbos_worker: Worker, postgres_server_url: str
) -> None:
    secret = "Api-form-s3cret-9"
    url = sa.make_url(system_database_url)
    server = sa.make_url(postgres_server_url)
    # What the UI form posts: standard fields plus an Extra JSON string of the typed form fields.
    form_extra = json.dumps(
        {
            "dbos_system_schema": "dbos",
            "connect_timeout": 5,
            "serialization": "portable",
            "use_listen_notify": False,
            "application_name": None,
            "system_database_url": None,
        }
    )
    good = {
        "connection_id": "dbos_form",
        "conn_type": "dbos",
        "host": url.host,
        "port": url.port or 5432,
        "login": url.username,
        "password": secret,
        "schema": url.database,
        "extra": form_extra,
    }
    no_tables = {**good, "connection_id": "dbos_form_empty", "host": server.host, "schema": server.database}
    down = {**good, "connection_id": "dbos_form_down", "host": "127.0.0.1", "port": 1}
    result, output = _api([good, no_tables, down], test_connection="Enabled")

    [meta] = [m for m in result["meta"] if m["connection_type"] == "dbos"]
    assert meta["hook_class_name"] == HOOK_CLASS and meta["hook_name"] == "DBOS"
    assert list(meta["extra_fields"]) == list(EXTRA_FIELDS)  # stored unprefixed: exactly what the hook reads
    assert meta["extra_fields"]["serialization"]["value"] == "portable"
    assert meta["standard_fields"]["url_schema"]["title"].startswith("Database")

    ok, empty, unreachable = result["tests"]
    assert ok["code"] == 200 and ok["body"]["status"] is True, ok
    assert f"/{url.database}" in ok["body"]["message"]
    assert empty["code"] == 200 and empty["body"]["status"] is False
    assert f"no DBOS system tables in {server.database}.dbos" in empty["body"]["message"]
    assert "launch the DBOS application against it once" in empty["body"]["message"]
    assert unreachable["code"] == 200 and unreachable["body"]["status"] is False
    assert "cannot connect to the DBOS system database at 127.0.0.1:1/" in unreachable["body"]["message"]
    for text in (json.dumps(result["tests"]), output):
        assert secret not in text


def test_test_button_is_off_unless_enabled(airflow_db: Path) -> None:
    body = {"connection_id": "dbos_off", "conn_type": "dbos", "host": "127.0.0.1", "schema": "x_dbos_sys"}
    result, _ = _api([body], test_connection=None)
    [off] = result["tests"]
    assert off["code"] == 403
    assert "disabled" in json.dumps(off["body"]).lower()
