"""The TypeScript SDK's SuperJSON read as plain JSON (dbos_orchestrator/store/superjson.py; README, "Applications
in other languages"): an error's name and message are shown, nothing else is guessed at."""

from __future__ import annotations

import json

import pytest
from dbos_orchestrator.store.superjson import describe_superjson_error


def _stored(body: object) -> str:
    return json.dumps({"json": body, "meta": {"values": {}}, "__dbos_serializer": "superjson"})


def test_an_error_reads_as_name_and_message_without_its_stack() -> None:
    text = _stored({"name": "OrderRejectedError", "message": "no stock for widget", "stack": "at reject (a.js:1:2)"})
    assert describe_superjson_error(text) == "OrderRejectedError: no stock for widget"


def test_a_name_alone_or_a_message_alone() -> None:
    assert describe_superjson_error(_stored({"name": "TimeoutError"})) == "TimeoutError"
    assert describe_superjson_error(_stored({"message": "boom"})) == "Error: boom"
    assert describe_superjson_error(_stored("plain text thrown")) == "plain text thrown"


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        json.dumps({"json": {"name": "E"}}),  # no SuperJSON marker
        json.dumps({"json": {"name": "E"}, "__dbos_serializer": "portable"}),
        json.dumps([1, 2]),
        _stored(None),
    ],
)
def test_anything_else_is_not_one(text: str) -> None:
    assert describe_superjson_error(text) is None
