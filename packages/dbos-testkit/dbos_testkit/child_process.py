"""One child process (a DBOS worker, Airflow) for the demo, the local stack, the tests and bench."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import IO, TYPE_CHECKING

from dbos_testkit.processes import new_mark, stop_marked, with_mark

if TYPE_CHECKING:
    from pathlib import Path


class ChildProcess:
    """A child process whose output is kept (and logged to ``log_path`` when given).

    ``wait_for(text)`` waits for a line containing ``text`` and fails with the last lines of
    output if the process exits first; ``stop()`` sends ``stop_signal`` to its process group, then
    kills it, then stops every process it started that left the group (found by the mark in their
    environment: :mod:`dbos_testkit.processes`).

    :param stop_signal: what ``stop()`` sends first (``airflow standalone`` shuts its components
        down on SIGINT only; on SIGTERM it dies and leaves them running).
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        log_path: Path | None = None,
        echo: IO[str] | None = None,
        *,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.mark = new_mark(name.replace(" ", "_"))
        self.stop_signal = stop_signal
        self.log_path = log_path
        self._log: IO[str] | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = log_path.open("a", encoding="utf-8")
        self._echo = echo
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self.proc = subprocess.Popen(
            argv,
            env=with_mark(env, self.mark),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if self._log is not None:
                self._log.write(line)
                self._log.flush()
            if self._echo is not None:
                self._echo.write(f"{self.name:>8} | {line}")
                self._echo.flush()
            with self._seen:
                self.lines.append(line.rstrip())
                self._seen.notify_all()

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._seen:
            while not any(text in line for line in self.lines):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    why = "exited" if self.proc.poll() is not None else f"did not print {text!r} in {timeout:.0f}s"
                    tail = "\n".join(self.lines[-30:])
                    where = f"; see {self.log_path}" if self.log_path else ""
                    raise RuntimeError(f"{self.name} {why}{where}. Last lines:\n{tail}")
                self._seen.wait(0.5)

    def stop(self, grace: float = 10) -> int | None:
        """``stop_signal`` to the process group, SIGKILL after ``grace`` seconds; then the same for
        every process it started elsewhere (other groups, re-parented orphans)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, self.stop_signal)
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        stop_marked(self.mark, grace)
        if self._log is not None:
            self._log.close()
        return self.proc.returncode
