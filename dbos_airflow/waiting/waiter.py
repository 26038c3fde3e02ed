"""Old import path of :mod:`dbos_orchestrator.waiting.waiter` (the same module object)."""

from __future__ import annotations

import sys

from dbos_orchestrator.waiting import waiter as _moved
from dbos_orchestrator.waiting.waiter import *  # noqa: F403 - the names, for type checkers

sys.modules[__name__] = _moved
