"""Old import path of :mod:`dbos_airflow.contract.events` (the same module object)."""

from __future__ import annotations

import sys

from dbos_airflow.contract import events as _moved
from dbos_airflow.contract.events import *  # noqa: F403 - the names, for type checkers

sys.modules[__name__] = _moved
