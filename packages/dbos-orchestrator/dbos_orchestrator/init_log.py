"""dbos' "Initializing DBOS system database ..." log lines: once per process, never from shared waiters."""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["quiet_initialization"]


class _InitializingOnce(logging.Filter):
    """Lets dbos' "Initializing DBOS system database ..." lines through once per process.

    Every client dbos-airflow creates logs it (a task makes several: enqueue, wait, result), so a
    task log showed it three times. Clients created while :attr:`quiet` is set (the triggerer's
    shared waiter, which serves many tasks) never log it.
    """

    PREFIXES = ("Initializing DBOS system database", "DBOS system database engine parameters")
    seen: set[str] = set()
    local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        prefix = next((p for p in self.PREFIXES if str(record.msg).startswith(p)), None)
        if prefix is None:
            return True
        if getattr(self.local, "quiet", False) or prefix in _InitializingOnce.seen:
            return False
        _InitializingOnce.seen.add(prefix)
        return True

    @classmethod
    def install(cls) -> None:
        logger = logging.getLogger("dbos")
        if not any(isinstance(f, cls) for f in logger.filters):
            logger.addFilter(cls())


_InitializingOnce.install()


@contextmanager
def quiet_initialization() -> Iterator[None]:
    """Clients created inside this block (on this thread) do not log dbos' initialization line."""
    _InitializingOnce.local.quiet = True
    try:
        yield
    finally:
        _InitializingOnce.local.quiet = False
