"""Every process a command started, found by a mark in its environment, and stopped.

A process group is not enough: ``airflow standalone`` starts its scheduler, which starts executor
workers, some in process groups of their own, some ignoring SIGTERM, and a child whose parent died
is re-parented to init, out of reach of its ancestry. What every descendant keeps is the environment
it was started with, so a command puts a *mark* (a random token) into ``$DBOS_TESTKIT_MARKS`` and
everything it starts, at any depth, carries it::

    mark = new_mark("demo")
    os.environ[MARKS] = with_mark(os.environ, mark)[MARKS]  # or pass with_mark(env, mark) to Popen
    ...
    stop_marked(mark)  # SIGTERM every process carrying it, SIGKILL what is left after the grace

Marks nest (the variable holds a space-separated list), so a test that starts ``make airflow`` finds
the worker that script started under its own mark. A process that wrote its title over its
environment is found through its session or its parent (:func:`marked_pids`). Only those processes
are signalled: never another user's, never one found by name. Linux (``/proc``); elsewhere nothing
is found.

:func:`owned` wraps a whole script (``make demo``, ``make airflow``): SIGTERM and SIGHUP end it like
Ctrl-C does, and on the way out whatever it started is stopped.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from types import FrameType

MARKS = "DBOS_TESTKIT_MARKS"
PROC = Path("/proc")


def new_mark(label: str) -> str:
    """A token no other command carries: ``<label>-<pid>-<random>``."""
    return f"{label}-{os.getpid()}-{secrets.token_hex(6)}"


def with_mark(env: Mapping[str, str], mark: str) -> dict[str, str]:
    """A copy of ``env`` whose ``$DBOS_TESTKIT_MARKS`` also holds ``mark`` (marks already there stay)."""
    return {**env, MARKS: " ".join([*env.get(MARKS, "").split(), mark])}


def _marks_of(pid: int) -> list[str]:
    """The marks in the environment ``pid`` was started with (none when it is gone, a zombie, or not ours)."""
    try:
        environ = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return []
    prefix = MARKS.encode() + b"="
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace").split()
    return []


def _stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, parent pid, session id)`` of ``pid``, or None when it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command (in parentheses) may hold spaces
    return fields[0], int(fields[1]), int(fields[3])


def marked_pids(mark: str) -> list[int]:
    """The live processes started with ``mark`` in their environment, and what they started.

    Some processes rewrite their title over their environment (``setproctitle``: Airflow's api-server,
    executor workers, task supervisors), so the mark alone misses them. Also counted: every process in
    a session a marked process belongs to (a command started in a session of its own, with whatever
    it started there, orphans included), except this process's own session (shared with the shell),
    and the descendants of marked processes. This process and its ancestors never count.
    """
    if not PROC.is_dir():
        return []
    stats = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None and stat[0] != "Z":
            stats[int(entry.name)] = stat
    mine = set()
    pid = os.getpid()
    while pid > 1 and pid not in mine:
        mine.add(pid)
        pid = stats.get(pid, ("", 0, 0))[1]
    marked = {pid for pid in stats if pid not in mine and mark in _marks_of(pid)}
    sessions = {stats[pid][2] for pid in marked} - {os.getsid(0), 0}
    found = marked | {pid for pid, (_, _, sid) in stats.items() if sid in sessions}
    grew = True
    while grew:  # descendants, at any depth
        more = {pid for pid, (_, ppid, _) in stats.items() if ppid in found} - found
        grew = bool(more)
        found |= more
    return sorted(found - mine)


def describe(pid: int) -> str:
    """``<pid> <command line>`` (shortened), for a message naming a process."""
    try:
        argv = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"{pid} (gone)"
    return f"{pid} {' '.join(a.decode(errors='replace') for a in argv if a)[:200]}"


def _signal_marked(mark: str, sig: int) -> list[int]:
    pids = marked_pids(mark)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    return pids


def stop_marked(mark: str, grace: float = 10) -> list[str]:
    """SIGTERM every process carrying ``mark``, SIGKILL those still alive after ``grace`` seconds.

    :param mark: the token given to :func:`with_mark`.
    :param grace: seconds the processes get to shut down on SIGTERM.
    :return: the processes found alive at the start (``pid command``), empty when there were none.
    """
    found = [describe(pid) for pid in marked_pids(mark)]
    if not found:
        return []
    _signal_marked(mark, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while marked_pids(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    deadline = time.monotonic() + 10
    while _signal_marked(mark, signal.SIGKILL) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def leftovers(mark: str, wait: float = 15) -> list[str]:
    """What still carries ``mark`` once ``wait`` seconds passed (a process stopped just before may still be
    exiting): those processes (``pid command``), stopped before returning; empty when none was left.

    A test session's last check (both conftests): every process it started must be gone by its end.
    """
    deadline = time.monotonic() + wait
    while marked_pids(mark) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = [describe(pid) for pid in marked_pids(mark)]
    if left:
        stop_marked(mark)
    return left


class Stopped(SystemExit):
    """SIGTERM or SIGHUP reached a script run under :func:`owned` (exit status 128 + the signal)."""


@contextlib.contextmanager
def owned(label: str, grace: float = 30) -> Iterator[str]:
    """Run a script's body as the owner of everything it starts; yields the mark.

    The mark goes into ``os.environ`` (so every child inherits it). SIGTERM (``kill <pid>``, or make
    passing it on) and SIGHUP (the terminal closed) raise :class:`Stopped` in the main thread, so the
    body's ``finally`` blocks run as on Ctrl-C; a second signal during the clean-up is ignored.
    On the way out, whatever still carries the mark is stopped (``grace`` seconds, then SIGKILL).

    :param label: names the mark (``demo``, ``airflow``).
    :param grace: seconds left processes get between SIGTERM and SIGKILL.
    """
    mark = new_mark(label)
    before = os.environ.get(MARKS)
    os.environ[MARKS] = with_mark(os.environ, mark)[MARKS]
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not received:
            received.append(signum)
            raise Stopped(128 + signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield mark
    finally:
        try:
            stop_marked(mark, grace)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if before is None:
                os.environ.pop(MARKS, None)
            else:
                os.environ[MARKS] = before
