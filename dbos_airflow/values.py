"""Old import path of :mod:`dbos_orchestrator.store.values` (the same module object)."""

from __future__ import annotations

import sys

from dbos_orchestrator.store import values as _moved
from dbos_orchestrator.store.values import *  # noqa: F403 - the names, for type checkers

sys.modules[__name__] = _moved
