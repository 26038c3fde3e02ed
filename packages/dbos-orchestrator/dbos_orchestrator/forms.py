"""Rendered template values as the types operators need.

A Params form or a Jinja template renders every value as text: ``"[1, 2]"`` for a list,
``"true"`` for a boolean, ``"300"`` or ``"None"`` for a timeout. These helpers turn them into
what was meant, or raise :class:`~dbos_orchestrator.exceptions.DBOSOptionsError` naming the field.
"""

from __future__ import annotations

import json
from typing import Any

from dbos_orchestrator.exceptions import DBOSOptionsError

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


def as_bool(name: str, value: Any) -> bool:
    """A boolean from a bool or its text (true/false, 1/0, yes/no, on/off)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DBOSOptionsError(f"{name}={value!r} is not a boolean (true/false)")


def as_text(value: Any) -> Any:
    """A whole number rendered natively (a form's ``"123"`` becomes ``123``) back as text; else unchanged.

    Ids, names and versions are text to DBOS; other types are left for the validator to name.
    """
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def as_json(name: str, value: Any, kind: type[list[Any]] | type[dict[str, Any]]) -> Any:
    """A list or dict from itself or its JSON text (an empty text is an empty one)."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else kind()
        except json.JSONDecodeError as exc:
            raise DBOSOptionsError(f"{name} is not valid JSON: {exc}") from None
    if kind is list and isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, kind):
        raise DBOSOptionsError(f"{name} must be a {'list' if kind is list else 'dict'}, got {type(value).__name__}")
    return value


def as_timeout(name: str, value: Any) -> float | None:
    """A positive number of seconds, or None ("wait as long as it takes") from None/""/"None"."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "None", "none")):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise DBOSOptionsError(f"{name}={value!r} is not a number of seconds") from None
    if seconds <= 0:
        raise DBOSOptionsError(f"{name}={value!r} must be a positive number of seconds")
    return seconds
