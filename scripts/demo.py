"""`make demo`: run every example DAG against the example DBOS worker and print one row per DAG run.

    python scripts/demo.py [--demo-dir .demo] [--only DAG_ID ...]

1. Picks the DBOS system database: ``$DBOS_SYSTEM_DATABASE_URL``, else ``.demo/dbos.sqlite``.
2. Migrates a SQLite Airflow metadata DB in ``.demo/airflow`` (first run only does real work).
3. Starts examples/order_worker.py on that system database and waits for its ready line.
4. Runs each example DAG with ``airflow dags test`` (a new logical date, so a new run id, each time).
   The asset-triggered incident DAG needs a triggerer, which ``dags test`` lacks: its DBOS
   completion watcher is fired once by scripts/demo_watcher.py (a refund fails on the worker,
   the trigger yields the asset event), and the DAG then runs on that event's payload.
   The approval DAG asks in Required Actions and ``dags test`` waits: scripts/demo_answer.py answers
   it through Airflow's REST API, with the request the Required Actions click sends.
5. Prints DAG, state, DBOS workflow ids, result and seconds per run; stops the worker.

Exits 1 if any run failed (its log is under ``.demo/logs``). Ctrl-C, ``kill <pid>`` (SIGTERM) and
closing the terminal (SIGHUP) stop the worker and any ``airflow dags test`` (dbos_testkit.processes.owned).
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dbos_testkit import local_stack, processes  # noqa: E402


@dataclass(frozen=True)
class DemoRun:
    dag_id: str
    conf: dict[str, Any] = field(default_factory=dict)
    result_task: str = ""
    result_key: str = "return_value"
    watcher: bool = False  # conf = {"events": [the payload of the DAG's completion watcher, fired once]}
    show_lines: str = ""  # print the lines of the run's log that contain this (e.g. a stream's values)
    answer: dict[str, Any] | None = None  # answered in Required Actions (REST API) while `dags test` waits


DEMO_RUNS = (
    DemoRun("dbos_run_workflow", {}, "run_workflow", "result"),
    DemoRun(
        "dbos_run_workflow",
        {
            "workflow_name": "Warehouse.pack",
            "workflow_class_name": "Warehouse",
            "args": [{"order_id": "D-7", "items": [{"sku": "widget", "qty": 25}]}],
        },
        "run_workflow",
        "result",
    ),
    DemoRun(
        "dbos_order_approval",
        {},
        "notify_customer",
        answer={"chosen_options": ["Approve"], "params_input": {"note": "approved in make demo"}},
    ),
    DemoRun("dbos_fan_out", {}, "total_parcels"),
    DemoRun("dbos_order_progress", {}, "progress", show_lines="stream 'progress' #"),
    DemoRun("dbos_order_incident", {}, "post_incident", watcher=True),
)


@dataclass
class RunRow:
    dag_id: str
    state: str
    workflow_ids: list[str]
    result: Any
    seconds: float
    log: Path


def fire_watcher(env: dict[str, str], log_dir: Path) -> dict[str, Any]:
    """Run scripts/demo_watcher.py: a refund fails, the incident DAG's watcher yields its payload."""
    import subprocess

    script = Path(__file__).resolve().parent / "demo_watcher.py"
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    log = log_dir / "demo_watcher.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(done.stdout + done.stderr)
    events = [line[len("EVENT ") :] for line in done.stdout.splitlines() if line.startswith("EVENT ")]
    if done.returncode != 0 or not events:
        raise RuntimeError(f"the DBOS completion watcher did not fire; see {log}")
    payload: dict[str, Any] = json.loads(events[-1])
    print(f"  watcher fired: {payload['name']} {payload['workflow_id']} ended {payload['status']}", flush=True)
    return payload


class Answerer:
    """scripts/demo_answer.py in its own process group: answers the DAG's Required Action once asked."""

    def __init__(self, run: DemoRun, env: dict[str, str]) -> None:
        import subprocess

        script = Path(__file__).resolve().parent / "demo_answer.py"
        self.process = subprocess.Popen(
            [sys.executable, str(script), run.dag_id, json.dumps(run.answer)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def stop(self) -> str:
        """Its output (the question asked, the answer sent); it is stopped if still waiting."""
        import os
        import signal
        import subprocess

        try:
            out, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            out, _ = self.process.communicate()
        for line in out.splitlines():
            if line.startswith(("ASKED ", "ANSWERED ")):
                print(f"  Required Actions: {_short(line, 150)}", flush=True)
        return "\n--- scripts/demo_answer.py ---\n" + out


def run_dag(run: DemoRun, env: dict[str, str], airflow_home: Path, log_dir: Path) -> RunRow:
    logical_date = datetime.now(timezone.utc).isoformat()
    argv = ["dags", "test", run.dag_id, logical_date]
    if run.conf:
        argv += ["--conf", json.dumps(run.conf)]
    started = time.monotonic()
    person = Answerer(run, env) if run.answer is not None else None
    try:
        done = local_stack.airflow(*argv, env=env, timeout=900)
    finally:
        answered = person.stop() if person is not None else ""
    seconds = time.monotonic() - started
    log = log_dir / f"{run.dag_id}-{logical_date.replace(':', '')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(done.stdout + done.stderr + answered)
    state, ids, result = read_run(airflow_home / "airflow.db", run)
    if done.returncode != 0 and state == "success":
        state = f"exit {done.returncode}"
    return RunRow(run.dag_id, state, ids, result, seconds, log)


def read_run(metadata_db: Path, run: DemoRun) -> tuple[str, list[str], Any]:
    """The latest run of ``run.dag_id``: its state, the workflow ids its tasks enqueued, its result."""
    with sqlite3.connect(metadata_db) as db:
        row = db.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (run.dag_id,)
        ).fetchone()
        if row is None:
            return "not run", [], None
        run_id, state = row
        xcoms = db.execute(
            "SELECT task_id, map_index, key, value FROM xcom WHERE dag_id = ? AND run_id = ? "
            "ORDER BY task_id, map_index",
            (run.dag_id, run_id),
        ).fetchall()
    # Sensors and send tasks also record the workflow they act on: list each workflow once.
    ids = list(dict.fromkeys(_json(value) for _, _, key, value in xcoms if key == "workflow_id"))
    results = [_json(value) for task, _, key, value in xcoms if task == run.result_task and key == run.result_key]
    return str(state), [str(i) for i in ids], results[0] if len(results) == 1 else (results or None)


def _json(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _short_id(workflow_id: str) -> str:
    """``dag:run:task:map`` ids are long; show ``task[:map]`` plus the run's timestamp suffix."""
    parts = workflow_id.split(":")
    if len(parts) < 4:
        return workflow_id
    task, index = parts[-2], parts[-1]
    return f"{task}[{index}]" if index != "-1" else task


def print_table(rows: list[RunRow], out: Any = None) -> None:
    out = out or sys.stdout
    header = ("DAG", "state", "DBOS workflow ids", "result", "seconds")
    cells = [
        (
            r.dag_id,
            r.state,
            _short(", ".join(_short_id(i) for i in r.workflow_ids) or "-", 48),
            _short(json.dumps(r.result) if not isinstance(r.result, str) else r.result, 70),
            f"{r.seconds:.1f}",
        )
        for r in rows
    ]
    widths = [max(len(str(c[i])) for c in [header, *cells]) for i in range(len(header))]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    print(line, file=out)
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |", file=out)
    print(line, file=out)
    for c in cells:
        print("| " + " | ".join(str(v).ljust(w) for v, w in zip(c, widths, strict=True)) + " |", file=out)
    print(line, file=out)
    for r in rows:
        if r.workflow_ids:
            print(f"{r.dag_id}: workflow ids {', '.join(r.workflow_ids)}", file=out)


def main(argv: list[str] | None = None, runs: tuple[DemoRun, ...] = DEMO_RUNS) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-dir", type=Path, default=local_stack.DEMO_DIR)
    parser.add_argument("--only", nargs="*", default=None, help="run only these DAG ids")
    opts = parser.parse_args(argv)
    demo_dir: Path = opts.demo_dir.resolve()
    url = local_stack.system_database_url(demo_dir)
    airflow_home = demo_dir / "airflow"
    env = local_stack.airflow_env(airflow_home, url, AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING")
    runs = tuple(r for r in runs if opts.only is None or r.dag_id in opts.only)

    print(f"DBOS system database: {local_stack.shown_url(url)}", flush=True)
    print(f"Airflow metadata DB:  {airflow_home / 'airflow.db'} (migrating)", flush=True)
    local_stack.migrate(env)
    print("Starting the example DBOS worker (examples/order_worker.py)", flush=True)
    worker = local_stack.start_worker(url, demo_dir / "worker.log")
    rows: list[RunRow] = []
    try:
        for run in runs:
            if run.watcher:
                print(f"firing the DBOS completion watcher of {run.dag_id} ...", flush=True)
                payload = fire_watcher(env, demo_dir / "logs")
                run = DemoRun(run.dag_id, {**run.conf, "events": [payload]}, run.result_task, run.result_key)
            print(f"airflow dags test {run.dag_id} ...", flush=True)
            run_env = {**env, "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"} if run.show_lines else env
            rows.append(run_dag(run, run_env, airflow_home, demo_dir / "logs"))
            print(f"  -> {rows[-1].state} in {rows[-1].seconds:.1f}s", flush=True)
    finally:
        code = worker.stop()
        if code not in (0, None):
            print(f"warning: the worker exited with {code}; see {worker.log_path}", file=sys.stderr)
    print()
    print_table(rows)
    for run, row in zip(runs, rows, strict=False):
        if run.show_lines:
            shown = [
                line.strip() for line in row.log.read_text(errors="replace").splitlines() if run.show_lines in line
            ]
            print(f"\n{run.dag_id}: {len(shown)} line(s) of its task logs with {run.show_lines!r}:")
            for line in shown[:12]:
                print(f"  {_short(line, 160)}")
    failed = [r for r in rows if r.state != "success"]
    for r in failed:
        print(f"\nFAILED: {r.dag_id} ({r.state}); full log: {r.log}\n{_errors(r.log)}", file=sys.stderr)
    return 1 if failed else 0


def _errors(path: Path, lines: int = 25) -> str:
    """The log's exception lines (``...Error: message``), else its last lines."""
    text = path.read_text(errors="replace").splitlines()
    found = [line for line in text if re.search(r"^\S*(Exception|Error|Timeout)\w*: ", line.strip())]
    return "\n".join(dict.fromkeys(found)) if found else "\n".join(text[-lines:])


if __name__ == "__main__":
    with processes.owned("demo"):
        code = main()
    sys.exit(code)
