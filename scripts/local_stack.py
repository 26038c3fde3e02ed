"""``make airflow``: the example DBOS worker plus ``airflow standalone``, all on loopback, no Docker.

    python scripts/local_stack.py [--port 8080] [--demo-dir .demo]

The DBOS system database is ``$DBOS_SYSTEM_DATABASE_URL`` when set, else an embedded SQLite file
under ``.demo/``. Ctrl-C, ``kill <pid>`` (SIGTERM, also through make) and closing the terminal (SIGHUP)
stop the worker and every Airflow process (dbos_testkit.processes.owned). The pieces (worker, Airflow
environment, ports) are :mod:`dbos_testkit.local_stack`, which ``make demo`` and the tests share.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dbos_testkit import processes
from dbos_testkit.local_stack import (
    DEMO_DIR,
    admin_password,
    shown_url,
    start_standalone,
    start_worker,
    system_database_url,
    wait_http,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", "8080")))
    parser.add_argument("--demo-dir", type=Path, default=DEMO_DIR)
    opts = parser.parse_args()
    url = system_database_url(opts.demo_dir)
    home = opts.demo_dir / "airflow-ui"
    worker = start_worker(url, opts.demo_dir / "worker-ui.log", echo=sys.stdout)
    web = start_standalone(home, url, opts.port, opts.demo_dir / "airflow-ui.log")
    print(f"Starting airflow standalone (log: {web.log_path}) ...", flush=True)
    try:
        wait_http(f"http://127.0.0.1:{opts.port}/api/v2/monitor/health", timeout=300)
        password = admin_password(home)
        print(
            f"\n  Airflow UI: http://127.0.0.1:{opts.port}   login: admin / {password}\n"
            f"  DBOS system database: {shown_url(url)}   worker log: {worker.log_path}\n"
            "  Trigger the dbos_run_workflow DAG to run a workflow from the form. Ctrl-C stops everything.\n",
            flush=True,
        )
        web.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        web.stop(grace=30)
        worker.stop()
    return 0


if __name__ == "__main__":
    with processes.owned("airflow"):
        code = main()
    sys.exit(code)
