"""dbos' "Initializing DBOS system database" lines (dbos_orchestrator/init_log.py): once per process, and never
from a client created inside quiet_initialization() (the triggerer's shared waiter)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import pytest
from dbos_orchestrator import init_log

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], int]]:
    """How often one warning on the ``dbos`` logger reaches a handler (on that logger: whatever dbos did to
    its propagation), in a process that has not shown the initialization lines yet."""
    monkeypatch.setattr(init_log._InitializingOnce, "seen", set())
    logger, kept = logging.getLogger("dbos"), _Kept()
    logger.addHandler(kept)
    monkeypatch.setattr(logger, "level", logging.DEBUG)
    monkeypatch.setattr(logger, "disabled", False)

    def count(message: str) -> int:
        kept.messages.clear()
        logger.warning(message)
        return kept.messages.count(message)

    yield count
    logger.removeHandler(kept)


def test_the_initialization_line_shows_once_and_never_when_quiet(logged: Callable[[str], int]) -> None:
    line = "Initializing DBOS system database with URL: postgresql://h/db"
    with init_log.quiet_initialization():
        assert logged(line) == 0  # the shared waiter's client: not even the first time
    assert logged(line) == 1
    assert logged(line) == 0  # the next client of the same process
    assert logged("anything else dbos says") == 1
    assert logged("anything else dbos says") == 1


def test_quiet_is_per_thread(logged: Callable[[str], int]) -> None:
    line = "DBOS system database engine parameters: {}"
    seen: list[int] = []
    with init_log.quiet_initialization():
        other = threading.Thread(target=lambda: seen.append(logged(line)))
        other.start()
        other.join()
    assert seen == [1]  # another thread's client was not inside the block


def test_installing_twice_adds_one_filter() -> None:
    init_log._InitializingOnce.install()
    filters = [f for f in logging.getLogger("dbos").filters if isinstance(f, init_log._InitializingOnce)]
    assert len(filters) == 1
