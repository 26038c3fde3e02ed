"""`make airflow` and `make demo` leave nothing running, whatever stops them.

Each command runs as a user starts it (``make airflow`` / ``make demo``, in a session of its own, as a
terminal's job), on a private demo dir and port. Then the signal a user sends: ``kill <pid of make>``
(SIGTERM; make passes it on to the script) or the terminal closed (SIGHUP to the job's process group;
the worker and ``airflow standalone`` run in sessions of their own and never see it). Once make has
exited, no process carrying the test's mark (everything the command started, at any depth:
dbos_testkit.processes) may be alive. ``make airflow`` is signalled once the UI answers, when
``airflow standalone`` runs its scheduler, dag-processor, triggerer and api-server; ``make demo`` while
the worker runs and the first ``airflow dags test`` has started.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from dbos_testkit.child_process import ChildProcess
from dbos_testkit.local_stack import free_port
from dbos_testkit.processes import describe, marked_pids, new_mark, stop_marked, with_mark

VENV = Path(sys.prefix)
SIGNALS = [
    pytest.param(signal.SIGTERM, id="kill-pid-SIGTERM"),
    pytest.param(signal.SIGHUP, id="terminal-closed-SIGHUP"),
]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo dir for the module: the second run of each command finds its Airflow home migrated."""
    return tmp_path_factory.mktemp("demo")


def _make(target: str, demo_dir: Path, mark: str) -> ChildProcess:
    """``make <target>`` of this checkout with this venv, never reinstalling (``-o`` the install stamp)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "DBOS_SYSTEM_DATABASE_URL"}
    env["AIRFLOW_PORT"] = str(free_port())
    argv = ["make", "-s", "-C", str(ROOT), "-o", f"{VENV}/.installed", target, f"VENV={VENV}", f"DEMO_DIR={demo_dir}"]
    return ChildProcess(f"make {target}", argv, with_mark(env, mark), demo_dir / f"make-{target}.log")


def _signal_and_check(make: ChildProcess, sig: int, mark: str, started: str) -> None:
    """Send ``sig`` as a user would, wait for make to exit, then nothing carrying ``mark`` may be left."""
    running = [describe(pid) for pid in marked_pids(mark)]
    assert any(started in line for line in running), running  # the check sees what the command started
    if sig == signal.SIGHUP:
        os.killpg(make.proc.pid, sig)  # the terminal hangs up its foreground job: make and the script
    else:
        os.kill(make.proc.pid, sig)  # `kill <pid>` of make
    make.proc.wait(timeout=120)
    left = [describe(pid) for pid in marked_pids(mark)]
    assert left == [], f"{len(running)} processes ran; left after make exited:\n" + "\n".join(left)


@pytest.mark.parametrize("sig", SIGNALS)
def test_make_airflow_stops_everything(sig: int, demo_dir: Path) -> None:
    mark = new_mark("make-airflow-test")
    make = _make("airflow", demo_dir, mark)
    try:
        make.wait_for("Airflow UI:", timeout=420)
        # Every component of airflow standalone is up before the signal (the api-server retitles itself
        # "airflow api_server -- ..." over its environment: found through its session).
        deadline = time.monotonic() + 120
        wanted = ("airflow scheduler", "airflow dag-processor", "airflow triggerer", "airflow api_server")
        running = ""
        while not all(w in running for w in wanted) and time.monotonic() < deadline:
            time.sleep(1)
            running = " | ".join(describe(pid) for pid in marked_pids(mark))
        assert all(w in running for w in wanted), running
        _signal_and_check(make, sig, mark, "examples/order_worker.py")
    finally:
        make.stop()
        stop_marked(mark)


@pytest.mark.parametrize("sig", SIGNALS)
def test_make_demo_stops_everything(sig: int, demo_dir: Path) -> None:
    mark = new_mark("make-demo-test")
    make = _make("demo", demo_dir, mark)
    try:
        make.wait_for("airflow dags test ", timeout=300)
        _signal_and_check(make, sig, mark, "examples/order_worker.py")
    finally:
        make.stop()
        stop_marked(mark)
