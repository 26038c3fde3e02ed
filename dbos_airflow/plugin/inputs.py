"""What the DBOS views accept from a request: each bad value is a 400 naming its field.

No value reaches the metadata database, DBOS' database or a log line before it passed here:
no NUL byte or lone surrogate (Postgres and UTF-8 refuse them), numbers in the range of the
column they are compared with, ids in Airflow's own shapes (docs/ui.md, "Bad input").
"""

from __future__ import annotations

import math
import re

from fastapi import HTTPException

MAX_ID_CHARS = 250  # Airflow's dag_id/task_id/run_id columns
MAX_WORKFLOW_ID_CHARS = 1000
MAX_MAP_INDEX = 2**31 - 1
MAX_STEP = 2**31 - 1
MAX_PAGE = 100_000
MAX_SINCE_HOURS = 24 * 366 * 100
KEY_RE = re.compile(r"^[\w.-]+$")  # Airflow's KEY_REGEX for dag and task ids


class BadInput(HTTPException):
    """A 400 whose message starts with the field's name."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(400, f"{field}: {problem}")
        self.field = field


def text(field: str, value: str, *, max_chars: int = MAX_WORKFLOW_ID_CHARS, required: bool = True) -> str:
    """Printable text: no NUL or control byte, no lone surrogate, bounded."""
    if required and not value:
        raise BadInput(field, "must not be empty")
    if len(value) > max_chars:
        raise BadInput(field, f"longer than {max_chars} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise BadInput(field, "contains a control character (e.g. a NUL byte)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(field, "is not valid Unicode text (a lone surrogate)") from None
    return value


def key(field: str, value: str) -> str:
    """A DAG or task id: Airflow's own shape (letters, digits, ``_ . -``), so no ``/`` or ``..``."""
    text(field, value, max_chars=MAX_ID_CHARS)
    if not KEY_RE.match(value) or value in (".", ".."):
        raise BadInput(field, "is not a valid Airflow id (letters, digits, '_', '.', '-')")
    return value


def map_index(value: str) -> int:
    """The tab's map index; the UI leaves ``{MAP_INDEX}`` (or nothing) for an unmapped task."""
    if value in ("", "{MAP_INDEX}", "-1"):
        return -1
    if not re.fullmatch(r"-?\d{1,20}", value):
        raise BadInput("map_index", "is not an integer")
    number = int(value)
    if not -1 <= number <= MAX_MAP_INDEX:
        raise BadInput("map_index", f"must be between -1 and {MAX_MAP_INDEX}")
    return number


def since_hours(value: str) -> float | None:
    """Hours back from now, a finite positive number; empty means "any time"."""
    if not value.strip():
        return None
    try:
        hours = float(value)
    except ValueError:
        raise BadInput("since_hours", "is not a number") from None
    if not math.isfinite(hours) or not 0 < hours <= MAX_SINCE_HOURS:
        raise BadInput("since_hours", f"must be a number of hours above 0 and at most {MAX_SINCE_HOURS}")
    return hours


def page(value: int) -> int:
    if not 1 <= value <= MAX_PAGE:
        raise BadInput("page", f"must be between 1 and {MAX_PAGE}")
    return value


def step(value: int | None) -> int:
    """A fork's step: DBOS numbers steps from 1; no step means 1."""
    if value is None:
        return 1
    if not 1 <= value <= MAX_STEP:
        raise BadInput("step", f"must be between 1 and {MAX_STEP} (DBOS numbers steps from 1)")
    return value


def status(value: str) -> str:
    from dbos_orchestrator.status import DBOSWorkflowStatus

    if not value:
        return ""
    try:
        return DBOSWorkflowStatus.parse(value).value
    except ValueError:
        raise BadInput(
            "status", f"unknown status; use one of {', '.join(s.value for s in DBOSWorkflowStatus)}"
        ) from None


def stream_page(stream: str | None, before: int | None) -> None:
    """The streams' paging parameters (``stream``, ``before``): a stream key and an offset >= 0, together."""
    if stream is not None:
        text("stream", stream)
    if before is not None and (before < 0 or stream is None):
        raise BadInput("before", "must be an offset >= 0, given with stream")
