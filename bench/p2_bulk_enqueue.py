"""P2: 10,000 workflows through DBOSHook.enqueue_many vs plain dbos.DBOSClient.enqueue in a loop.

Both write portable-JSON no-op workflows onto a queue nobody polls; rows are deleted between
rounds (untimed). Sequential enqueue runs 2,000 per round (its rate does not depend on N).
Goals: >= 20,000 workflows/s and >= 25x the sequential rate; enqueue_many >= 0.90 of the
server-side ceiling (Postgres running ``enqueue_workflow`` BULK times in one statement). The
operator's own path, ``DBOSBulkEnqueueOperator.execute`` with its owner record (written once for
the batch, on its first item: docs/batch.md, "Enqueue throughput and the owner record"), is
measured against the same ceiling of the same size, ``OWNER_ROUNDS`` rounds at BULK items and
``BIG_ROUNDS`` at BIG items, **interleaved** (ceiling, operator, operator, ceiling, ...: each round
runs both, the order alternating), so a burst of load from other processes on this 2-core machine
lands on both sides; medians of each side, and the load average before and after in the N cell.
The operator's time includes its own work (items checked and given ids, the enqueue check's
cached read, connecting, encoding the items' arguments to JSON); the ceiling's timed region is one
statement whose arguments Postgres makes itself (``generate_series``): no client encoding, no
connecting, so it is the server's own floor; no wait.
"""

from __future__ import annotations

import os
import time

import sqlalchemy as sa

from bench.common_enqueue import UNPOLLED_QUEUE, clean, plain_client, portable_options
from bench.harness import Env, Row, bench_env, engine_for, median, report

BULK = 10_000
SEQUENTIAL = 2_000
ROUNDS = 5
OWNER_ROUNDS = 9
BIG = 100_000
BIG_ROUNDS = 3


def load() -> str:
    """The 1-minute load average (2 cores here): how busy the machine was."""
    return f"{os.getloadavg()[0]:.2f}"


def interleaved(env: Env, n: int, rounds: int, tag: str) -> tuple[list[float], list[float]]:
    """Rates (per s) of the operator's path and of the ceiling at ``n`` items, run round by round."""
    ours: list[float] = []
    ceiling: list[float] = []
    for r in range(rounds):
        for side in ("ceiling", "ours") if r % 2 == 0 else ("ours", "ceiling"):
            if side == "ours":
                ours.append(n / operator_path(env, f"{tag}{r}", n))
            else:
                ceiling.append(n / server_floor(env, r, n))
            clean(env)
    return ours, ceiling


def server_floor(env: Env, r: int, n: int = BULK) -> float:
    """Seconds Postgres alone needs for ``n`` calls of dbos.enqueue_workflow (one statement, no client work)."""
    engine = engine_for(env.system_database_url)
    try:
        with engine.begin() as conn:
            start = time.perf_counter()
            conn.execute(
                sa.text(
                    "SELECT count(dbos.enqueue_workflow('noop', :q, ARRAY[CAST(:r AS text)::json, g::text::json], "
                    "'{}'::json, workflow_id => 'floor-' || g)) FROM generate_series(1, :n) AS g"
                ),
                {"q": UNPOLLED_QUEUE, "r": r, "n": n},
            )
        return time.perf_counter() - start
    finally:
        engine.dispose()


def operator_path(env: Env, run: str, n: int) -> float:
    """Seconds ``DBOSBulkEnqueueOperator.execute`` takes for ``n`` items (no wait), owner record included."""
    from types import SimpleNamespace

    from dbos_airflow.operators.bulk import DBOSBulkEnqueueOperator

    op = DBOSBulkEnqueueOperator(
        task_id="bulk",
        workflow_name="noop",
        queue_name=UNPOLLED_QUEUE,
        items=[[0, i] for i in range(n)],  # two arguments, as the ceiling's workflows get
        dbos_conn_id=env.conn_id,
    )
    ti = SimpleNamespace(
        dag_id="p2", run_id=run, task_id="bulk", map_index=-1, try_number=1, xcom_push=lambda **kw: None
    )
    start = time.perf_counter()
    ids = op.execute({"ti": ti})  # type: ignore[arg-type]
    took = time.perf_counter() - start
    op.hook.close()
    owned = env.sql("SELECT count(*) FROM dbos.workflow_status WHERE attributes->'airflow'->>'dag_id' = 'p2'")[0][0]
    assert len(ids) == n and owned == 1, (len(ids), owned)  # one owner record for the batch: its first item's
    return took


def main() -> None:
    from dbos_airflow.hooks.dbos import DBOSHook

    with bench_env() as env:
        plain = plain_client(env)
        hook = DBOSHook(env.conn_id)
        options = portable_options()
        ours_options = {k: v for k, v in options.items() if k != "serialization_type"}
        plain.enqueue(options), hook.enqueue_many(ours_options, [[]])  # type: ignore[arg-type] # warm up
        clean(env)
        seq_rates: list[float] = []
        bulk_rates: list[float] = []
        floor_rates: list[float] = []
        for r in range(ROUNDS):
            start = time.perf_counter()
            for _ in range(SEQUENTIAL):
                plain.enqueue(options, r)
            seq_rates.append(SEQUENTIAL / (time.perf_counter() - start))
            clean(env)
            items = [{"args": [r, i], "workflow_id": f"bulk-{r}-{i}"} for i in range(BULK)]
            start = time.perf_counter()
            ids = hook.enqueue_many(ours_options, items)  # type: ignore[arg-type]
            bulk_rates.append(BULK / (time.perf_counter() - start))
            assert len(ids) == BULK
            clean(env)
            floor_rates.append(BULK / server_floor(env, r))
            clean(env)
        load_before = load()
        owner_rates, owner_floor_rates = interleaved(env, BULK, OWNER_ROUNDS, "r")
        load_mid = load()
        big_rates, big_floor_rates = interleaved(env, BIG, BIG_ROUNDS, "big")
        load_after = load()
        hook.close()
        plain.destroy()
    s, b, ceiling, owned = median(seq_rates), median(bulk_rates), median(floor_rates), median(owner_rates)
    owned_ceiling = median(owner_floor_rates)
    big_rate, big_floor = median(big_rates), median(big_floor_rates)
    owner_load = f"load average {load_before} before, {load_mid} after"
    big_load = f"load average {load_mid} before, {load_after} after"
    ratio = b / s
    met = "met" if b >= 20_000 and ratio >= 25 else "MISSED"
    print(
        f"(server-side ceiling of dbos.enqueue_workflow itself, one statement, no client: "
        f"{median(floor_rates):,.0f}/s; enqueue_many reaches {b / median(floor_rates):.0%} of it)"
    )
    report(
        "p2",
        [
            Row(
                "P2 bulk enqueue of 10,000 (workflows/s)",
                f"{s:,.0f}/s (sequential enqueue)",
                f"{b:,.0f}/s (enqueue_many, one transaction)",
                f"{ratio:.1f}x",
                f"{ROUNDS} rounds ({BULK:,} bulk, {SEQUENTIAL:,} sequential)",
                ">= 20,000/s and >= 25x",
                met,
            ),
            Row(
                "P2 bulk enqueue of 10,000: share of the server-side ceiling (enqueue_workflow x N, one statement)",
                f"{ceiling:,.0f}/s (ceiling)",
                f"{b:,.0f}/s (enqueue_many, SQL function path)",
                f"{b / ceiling:.2f}",
                f"{ROUNDS} rounds",
                ">= 0.90",
                "met" if b / ceiling >= 0.90 else "MISSED",
            ),
            Row(
                "P2 bulk enqueue of 10,000 with the operator's owner record (DBOSBulkEnqueueOperator's path)",
                f"{owned_ceiling:,.0f}/s (ceiling, run beside it)",
                f"{owned:,.0f}/s (DBOSBulkEnqueueOperator.execute: SQL function, owner record once per batch)",
                f"{owned / owned_ceiling:.2f}",
                f"{OWNER_ROUNDS} rounds interleaved with the ceiling's, {owner_load}",
                ">= 0.90",
                "met" if owned / owned_ceiling >= 0.90 else "MISSED",
            ),
            Row(
                "P2 bulk enqueue of 100,000 with the operator's owner record (DBOSBulkEnqueueOperator's path)",
                f"{big_floor:,.0f}/s (ceiling, run beside it)",
                f"{big_rate:,.0f}/s (DBOSBulkEnqueueOperator.execute: {BIG / big_rate:.1f} s)",
                f"{big_rate / big_floor:.2f}",
                f"{BIG_ROUNDS} rounds interleaved with the ceiling's, {big_load}",
                ">= 0.90",
                "met" if big_rate / big_floor >= 0.90 else "MISSED",
            ),
        ],
        {
            "sequential_per_s": seq_rates,
            "bulk_per_s": bulk_rates,
            "server_ceiling_per_s": floor_rates,
            "owner_record_per_s": owner_rates,
            "owner_record_ceiling_per_s": owner_floor_rates,
            "big_owner_record_per_s": big_rates,
            "big_ceiling_per_s": big_floor_rates,
            "load_average_1min": [load_before, load_mid, load_after],
        },
    )


if __name__ == "__main__":
    main()
