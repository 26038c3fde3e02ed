"""Provider metadata read by Airflow's provider discovery (``apache_airflow_provider`` entry point)."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    from dbos_airflow import __version__

    return {
        "package-name": "dbos-airflow",
        "name": "DBOS",
        "description": "Enqueue, message and wait on `DBOS <https://dbos.dev>`__ durable workflows.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "DBOS",
                "external-doc-url": "https://docs.dbos.dev/python/reference/client",
                "tags": ["software"],
            }
        ],
        "hooks": [{"integration-name": "DBOS", "python-modules": ["dbos_airflow.hooks.dbos"]}],
        "operators": [
            {
                "integration-name": "DBOS",
                "python-modules": [
                    "dbos_airflow.operators.dbos",
                    "dbos_airflow.operators.bulk",
                    "dbos_airflow.operators.manage",
                    "dbos_airflow.operators.queues",
                    "dbos_airflow.operators.schedules",
                    "dbos_airflow.operators.versions",
                    "dbos_airflow.operators.retention",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "DBOS",
                "python-modules": [
                    "dbos_airflow.sensors.dbos",
                    "dbos_airflow.sensors.queues",
                    "dbos_airflow.sensors.streams",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "DBOS",
                "python-modules": [
                    "dbos_airflow.triggers.dbos",
                    "dbos_airflow.triggers.completed",
                    "dbos_airflow.triggers.streams",
                ],
            }
        ],
        "extra-links": [
            "dbos_airflow.links.DBOSWorkflowLink",
            "dbos_airflow.links.DBOSConsoleLink",
            "dbos_airflow.links.DBOSTraceLink",
        ],
        "connection-types": [
            {
                "connection-type": "dbos",
                "hook-class-name": "dbos_airflow.hooks.dbos.DBOSHook",
                "hook-name": "DBOS",
                "conn-fields": {
                    "system_database_url": {
                        "label": "System database URL",
                        "description": "Overrides host/port/login/password/database, e.g. sqlite:////path/app.sqlite "
                        "(still fill in Port: the Test button needs one)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "dbos_system_schema": {
                        "label": "DBOS system schema",
                        "description": "Schema of the DBOS system tables (the application's dbos_system_schema)",
                        "schema": {"type": ["string", "null"], "default": "dbos"},
                    },
                    "application_name": {
                        "label": "DBOS application name",
                        "description": "Owner stamped on workflows this connection enqueues",
                        "schema": {"type": ["string", "null"]},
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (seconds)",
                        "schema": {"type": ["integer", "null"], "default": 10},
                    },
                    "serialization": {
                        "label": "Serialization",
                        "description": "portable (JSON, any DBOS language) or pickle",
                        "schema": {
                            "type": ["string", "null"],
                            "enum": ["portable", "pickle", None],
                            "default": "portable",
                        },
                    },
                    "allow_pickle": {
                        "label": "Allow pickle (unsafe)",
                        "description": (
                            "Decode pickled workflow outputs, events and inputs inside Airflow. WARNING: loading a "
                            "pickle runs code: anyone who can write the DBOS system database could then run code "
                            "in Airflow. Leave off unless you trust every writer of that database."
                        ),
                        "schema": {"type": ["boolean", "null"], "default": False},
                    },
                    "use_listen_notify": {
                        "label": "Use LISTEN/NOTIFY",
                        "description": "Only if the DBOS application runs with use_listen_notify=True (its default)",
                        "schema": {"type": ["boolean", "null"], "default": False},
                    },
                    "transaction_pooling": {
                        "label": "Behind a transaction pooler",
                        "description": "The database is reached through PgBouncer pool_mode=transaction (or "
                        "another transaction pooler): no prepared statements, no LISTEN (waits poll)",
                        "schema": {"type": ["boolean", "null"], "default": False},
                    },
                    "sslmode": {
                        "label": "TLS mode (sslmode)",
                        "description": "libpq sslmode; managed Postgres needs require or (better) verify-full",
                        "schema": {
                            "type": ["string", "null"],
                            "enum": ["disable", "allow", "prefer", "require", "verify-ca", "verify-full", None],
                        },
                    },
                    "sslrootcert": {
                        "label": "TLS CA certificate (sslrootcert)",
                        "description": "Path of the CA bundle that signed the server's certificate, or the PEM itself",
                        "schema": {"type": ["string", "null"]},
                    },
                    "sslcert": {
                        "label": "TLS client certificate (sslcert)",
                        "description": "Path or PEM of the client certificate (servers with hostssl ... cert)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "sslkey": {
                        "label": "TLS client key (sslkey)",
                        "description": "Path or PEM of the client certificate's unencrypted key (PEM: a private file)",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "console_url": {
                        "label": "DBOS console URL",
                        "description": "Link template for a workflow in a DBOS console, e.g. "
                        "https://console.dbos.dev/workflows/{workflow_id}",
                        "schema": {"type": ["string", "null"]},
                    },
                    "trace_url": {
                        "label": "Trace URL",
                        "description": "Link template for a trace in your tracing UI (OpenTelemetry), e.g. "
                        "http://localhost:16686/trace/{trace_id}",
                        "schema": {"type": ["string", "null"]},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["extra"],
                    # Airflow 3.3.2's Test button posts a stored empty port as 0 and then refuses the test
                    # (fixed by apache/airflow#73298): no placeholder that looks like a value, and a label
                    # that asks for it, also when system_database_url replaces the other fields.
                    "relabeling": {
                        "schema": "Database (DBOS system database)",
                        "port": "Port (fill in, e.g. 5432: Test needs it, also with a System database URL)",
                    },
                    "placeholders": {
                        "host": "localhost",
                        "schema": "myapp_dbos_sys",
                        "login": "postgres",
                    },
                },
            }
        ],
    }
