"""The TypeScript DBOS SDK's own value format, SuperJSON, read as plain JSON (nothing is executed).

A TypeScript DBOS application stores what it writes outside DBOS portable JSON in SuperJSON
(tag ``js_superjson``): ``{"json": <value>, "meta": <types>, "__dbos_serializer": "superjson"}``.
Values are not decoded from it (``meta`` carries types JSON cannot), but an error's name and
message are plain strings under ``json``, so a failed TypeScript workflow still fails its task
with its own message. The SDK also writes an error it could not store in the workflow's format
(its failure to read pickled arguments) this way under the row's ``py_pickle`` tag; a JSON object
is never valid base64, so it cannot be mistaken for a pickle. README, "Applications in other languages".
No Airflow import: a second front end can reuse it.
"""

from __future__ import annotations

import json

__all__ = ["SUPERJSON", "SUPERJSON_HINT", "describe_superjson_error"]

SUPERJSON = "js_superjson"
SUPERJSON_HINT = "; it is the TypeScript SDK's default format: register that workflow with serialization: 'portable'"


def describe_superjson_error(text: str) -> str | None:
    """``Name: message`` of an error stored in SuperJSON, or None if ``text`` is not one.

    Only ``json.name`` and ``json.message`` are read (the stack is not shown).
    """
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("__dbos_serializer") != "superjson":
        return None
    body = data.get("json")
    if not isinstance(body, dict):
        return None if body is None else str(body)
    name, message = body.get("name") or "Error", body.get("message") or ""
    return f"{name}: {message}" if message else str(name)
