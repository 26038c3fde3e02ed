"""The suites that drive the real Airflow UI in headless Chromium (marker ``browser``)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def picture(name: str) -> Path:
    """Where a test's screenshot goes: test-artifacts/ (gitignored), or docs/images/ (what the docs show)
    with ``DBOS_AIRFLOW_DOCS_IMAGES=1``: a test run never rewrites a tracked file unless asked to."""
    folder = ROOT / ("docs/images" if os.environ.get("DBOS_AIRFLOW_DOCS_IMAGES") == "1" else "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
