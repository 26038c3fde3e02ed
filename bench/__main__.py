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
    "p3b": "bench.p3b_pgbouncer",  # P3 with the waits through PgBouncer (transaction and session pooling)
    "p4": "bench.p4_event_latency",
    "p5": "bench.p5_many_waits",
    "p6": "bench.p6_dag",
    "p7": "bench.p7_workflow_view",
    "p8": "bench.p8_completion_watchers",
    "p9": "bench.p9_triggerer",
    "p10": "bench.p10_batch",
    "p11": "bench.p11_prefect",  # measured in the Prefect venv (.venv-prefect), reported from here
    "p12": "bench.p12_streams",
}
COLUMNS = ("figure", "plain", "ours", "ratio", "n", "goal", "met", "date")
HEADER = ("Figure", "Plain dbos.DBOSClient", "dbos-airflow", "Ratio", "N", "Goal", "Met", "Date")


def write_results(names: list[str], seconds: float | None) -> None:
    """Put the rows of ``names`` (bench/.results/<name>.json) into bench/results.md.

    Each figure's rows replace its old ones of the same run variant in place (a figure that did
    not run keeps its rows; one that failed gets a "failed" row beside them); the notes below the
    table stay. ``seconds``: the total
    run time of ``python -m bench all`` (None: one figure ran, the recorded total stays).
    """
    path = BENCH / "results.md"
    old = path.read_text() if path.exists() else ""
    path.write_text(merge_results(old, {name: _rows(name) for name in names}, seconds))
    print(path.read_text())


def _rows(name: str) -> list[str]:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return [f"| {name.upper()} | (failed: see the output of `python -m bench {name}`) |" + " |" * 6]
    return ["| " + " | ".join(str(row[c]) for c in COLUMNS) + " |" for row in json.loads(path.read_text())["rows"]]


def _figure(row: str) -> str:
    """``p9`` for a row of figure P9 (its first cell starts with the figure's name)."""
    return row[2:].split(" ", 1)[0].lower()


def _variant(row: str) -> str:
    """Which run of its figure a row comes from: the last ``;`` part of its N cell (P9 runs twice:
    ``all 1,000 end at once`` and ``completions spread over 20 s``); empty for a one-part N."""
    cells = [c.strip() for c in row.strip().strip("|").split(" | ")]
    n = cells[COLUMNS.index("n")] if len(cells) == len(COLUMNS) else ""
    return n.rsplit("; ", 1)[1] if "; " in n else ""


def merge_results(old: str, rows: dict[str, list[str]], seconds: float | None) -> str:
    """bench/results.md with ``rows`` (figure name -> table lines) in place of the rows of the same
    figure and run variant (:func:`_variant`); other rows and the notes below the table stay."""
    lines = old.splitlines()
    head = [
        "# dbos-airflow benchmarks",
        "",
        "Made by `make bench` (`python -m bench all`): every figure runs the plain `dbos.DBOSClient` way",
        "and the dbos-airflow way in the same process, against a real DBOS worker (bench/app.py) on a",
        "fresh Postgres database. Medians / percentiles over N; see bench/<figure>.py for the method.",
    ]
    total = next((line for line in lines if line.startswith("Total run time:")), None)
    if seconds is not None:
        total = f"Total run time: {seconds:.0f} s."
    head += [*([total] if total else []), "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    start = next((i for i, line in enumerate(lines) if line.startswith("|---")), None)
    table: list[str] = []
    notes: list[str] = []
    if start is not None:
        end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("|")), len(lines))
        table, notes = lines[start + 1 : end], lines[end:]

    merged = list(table)
    for name, new_rows in rows.items():
        variants = {_variant(row) for row in new_rows}
        stale = [i for i, line in enumerate(merged) if _figure(line) == name and _variant(line) in variants]
        mine = [i for i, line in enumerate(merged) if _figure(line) == name]
        at = stale[0] if stale else (mine[-1] + 1 if mine else len(merged))
        kept = [line for i, line in enumerate(merged) if i not in set(stale)]
        at -= sum(1 for i in stale if i < at)
        merged = kept[:at] + new_rows + kept[at:]
    return "\n".join(head + merged + notes) + "\n"


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
        write_results([name], None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
