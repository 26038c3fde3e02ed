"""Old import path of :mod:`dbos_orchestrator.store.bulk` (the same module object)."""

from __future__ import annotations

import sys

from dbos_orchestrator.store import bulk as _moved
from dbos_orchestrator.store.bulk import *  # noqa: F403 - the names, for type checkers

sys.modules[__name__] = _moved
