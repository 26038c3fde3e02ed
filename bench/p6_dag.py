"""P6: a DAG that enqueues a no-op workflow and waits for it, through ``dag.test()``.

Three one-task DAGs (bench/dags/bench_dags.py), each run ``RUNS`` times alternately: a no-op
PythonOperator (the Airflow floor), ``DBOSEnqueueOperator(wait_for_completion=True)`` waiting
in the worker (default ``poll_interval`` = 1 s) and the same deferrable (waits through the
trigger and the shared waiter). The figure is the median wall time of ``dag.test()``; the
difference to the floor is what DBOS adds. The "plain client" column is the Airflow floor here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import BENCH, Row, bench_env, median, report

RUNS = 5
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {
            "name": "bench-dags",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(BENCH / "dags")},
        },
    ]
)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(BENCH / "dags")


def _dags() -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("bench_dags", BENCH / "dags" / "bench_dags.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: getattr(module, name) for name in ("bench_floor", "bench_dbos_sync", "bench_dbos_deferrable")}


def main() -> None:
    airflow = Path(sys.executable).parent / "airflow"
    done = subprocess.run([str(airflow), "db", "migrate"], env=os.environ.copy(), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    with bench_env():
        dags = _dags()
        for dag in dags.values():  # warm up: imports, first connection, serialization
            assert dag.test().state == "success"
        times: dict[str, list[float]] = {name: [] for name in dags}
        for _ in range(RUNS):
            for name, dag in dags.items():
                start = time.perf_counter()
                state = dag.test().state
                times[name].append(time.perf_counter() - start)
                assert state == "success", f"{name}: {state}"
    floor = median(times["bench_floor"])
    rows = []
    for name, label in (("bench_dbos_sync", "waiting in the worker"), ("bench_dbos_deferrable", "deferrable")):
        ours = median(times[name])
        rows.append(
            Row(
                f"P6 DAG enqueue+wait of a no-op workflow, {label} (dag.test() seconds)",
                f"{floor:.2f} s (no-op PythonOperator)",
                f"{ours:.2f} s (+{ours - floor:.2f} s)",
                f"{ours / floor:.2f}",
                f"{RUNS} runs each",
            )
        )
    report("p6", rows, times)


if __name__ == "__main__":
    main()
