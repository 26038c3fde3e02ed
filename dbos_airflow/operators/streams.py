"""A workflow's stream logged from a worker: one line per value, each once per process.

:class:`StreamLogger` reads every value written since its offset (pages of 100, with the
workflow's status) and logs it; :class:`~dbos_airflow.sensors.streams.DBOSStreamSensor` calls it
at each poke. :func:`stream_logged` runs one beside a blocking wait (``stream_to_log=`` of the
enqueue operator and the workflow sensor) and drains it when the wait ends.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from dbos_orchestrator.messages import stream_value_line
from dbos_orchestrator.store.streams import PAGE_SIZE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from dbos_orchestrator.store.streams import StreamPage
    from dbos_orchestrator.store.values import ValueReader

__all__ = ["StreamLogger", "stream_logged"]

POLL_SECONDS = 0.5  # beside a blocking wait: read the stream this often


class StreamLogger:
    """Logs stream ``key`` of a workflow from ``offset`` on; :attr:`offset` is the next one to log."""

    def __init__(self, log: Any, workflow_id: str, key: str, offset: int = 0) -> None:
        self.log, self.workflow_id, self.key, self.offset = log, workflow_id, key, offset
        self.handed_over = False  # a trigger logs from :attr:`offset` on: this logger logs no more
        self._lock = threading.Lock()  # one poll at a time (a background thread and the task's own)

    def hand_over(self, reader: ValueReader) -> int:
        """Log what is there, then stop logging; the offset a trigger continues from."""
        self.poll(reader)
        self.handed_over = True
        return self.offset

    def poll(self, reader: ValueReader) -> StreamPage | None:
        """Log every value written from :attr:`offset` (advanced per value logged); the last page read
        (None once handed over)."""
        with self._lock:
            return None if self.handed_over else self._poll(reader)

    def _poll(self, reader: ValueReader) -> StreamPage:
        while True:
            page = reader.stream_page(self.workflow_id, self.key, self.offset)
            for i, value in enumerate(page.values):
                self.log.info(stream_value_line(self.key, page.offset + i, value))
                self.offset = page.offset + i + 1  # an interruption mid-page keeps what was logged
            self.offset = page.next_offset
            if len(page.values) < PAGE_SIZE:
                return page


@contextlib.contextmanager
def stream_logged(
    log: Any, reader: Callable[[], ValueReader], workflow_id: str, key: str, offset: int = 0
) -> Iterator[StreamLogger]:
    """Log the stream every :data:`POLL_SECONDS` in a thread while the block runs, then once more
    (the values written last). A value that cannot be read (e.g. a pickle) is a warning, never the
    task's failure: the wait's own outcome decides."""
    logger = StreamLogger(log, workflow_id, key, offset)
    stop = threading.Event()

    def poll() -> bool:
        try:
            logger.poll(reader())
        except Exception as exc:  # noqa: BLE001 - logging the stream never fails the wait
            log.warning("Could not log stream %r of DBOS workflow %s: %s", key, workflow_id, exc)
            return False
        return True

    def run() -> None:
        while not stop.wait(POLL_SECONDS) and poll():
            pass

    thread = threading.Thread(target=run, name=f"dbos-stream-{key}", daemon=True)
    thread.start()
    try:
        yield logger
    finally:
        stop.set()
        thread.join()
        poll()
