"""Old import path of :mod:`dbos_orchestrator.status` (the same module object)."""

from __future__ import annotations

import sys

from dbos_orchestrator import status as _moved
from dbos_orchestrator.status import *  # noqa: F403 - the names, for type checkers

sys.modules[__name__] = _moved
