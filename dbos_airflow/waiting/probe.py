"""Old import path of :mod:`dbos_orchestrator.waiting.probe` (the same module object)."""

from __future__ import annotations

import sys

from dbos_orchestrator.waiting import probe as _moved
from dbos_orchestrator.waiting.probe import *  # noqa: F403 - the names, for type checkers

sys.modules[__name__] = _moved
