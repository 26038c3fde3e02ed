"""Old import path of :mod:`dbos_orchestrator.forms` (the same module object)."""

from __future__ import annotations

import sys

from dbos_orchestrator import forms as _moved
from dbos_orchestrator.forms import *  # noqa: F403 - the names, for type checkers

sys.modules[__name__] = _moved
