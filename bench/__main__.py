"""``python -m bench p1`` runs one figure; ``python -m bench all`` runs all and writes bench/results.md."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time

from bench.harness import BENCH, RESULTS

FIGURES = {
    "p1": "bench.p1_single_enqueue",
    "p2": "bench.p2_bulk_enqueue",
    "p3": "bench.p3_completion_latency",
    "p4": "bench.p4_event_latency",
    "p5": "bench.p5_many_waits",
    "p6": "bench.p6_dag",
    "p7": "bench.p7_workflow_view",
    "p8": "bench.p8_completion_watchers",
    "p9": "bench.p9_triggerer",
    "p10": "bench.p10_fanout",
    "p11": "bench.p11_prefect",  # measured in the Prefect venv (.venv-prefect), reported from here
}
COLUMNS = ("figure", "plain", "ours", "ratio", "n", "goal", "met", "date")
HEADER = ("Figure", "Plain dbos.DBOSClient", "dbos-airflow", "Ratio", "N", "Goal", "Met", "Date")


def write_results(names: list[str], seconds: float) -> None:
    lines = [
        "# dbos-airflow benchmarks",
        "",
        "Made by `make bench` (`python -m bench all`): every figure runs the plain `dbos.DBOSClient` way",
        "and the dbos-airflow way in the same process, against a real DBOS worker (bench/app.py) on a",
        "fresh Postgres database. Medians / percentiles over N; see bench/<figure>.py for the method.",
        f"Total run time: {seconds:.0f} s.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    for name in names:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            lines.append(f"| {name.upper()} | (failed: see the output of `python -m bench {name}`) |" + " |" * 6)
            continue
        for row in json.loads(path.read_text())["rows"]:
            lines.append("| " + " | ".join(str(row[c]) for c in COLUMNS) + " |")
    (BENCH / "results.md").write_text("\n".join(lines) + "\n")
    print((BENCH / "results.md").read_text())


def main(argv: list[str]) -> int:
    wanted = argv or ["all"]
    if wanted == ["all"]:
        start = time.monotonic()
        failed = []
        for name, module in FIGURES.items():
            (RESULTS / f"{name}.json").unlink(missing_ok=True)
            print(f"== {name} ({module})", flush=True)
            if subprocess.run([sys.executable, "-m", module], cwd=BENCH.parent).returncode != 0:
                failed.append(name)
        write_results(list(FIGURES), time.monotonic() - start)
        return 1 if failed else 0
    for name in wanted:
        if name not in FIGURES:
            print(f"unknown figure {name!r}; choose from {', '.join(FIGURES)} or all", file=sys.stderr)
            return 2
        importlib.import_module(FIGURES[name]).main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
