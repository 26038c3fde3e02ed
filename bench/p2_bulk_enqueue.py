"""P2: 10,000 workflows through DBOSHook.enqueue_many vs plain dbos.DBOSClient.enqueue in a loop.

Both write portable-JSON no-op workflows onto a queue nobody polls; rows are deleted between
rounds (untimed). Sequential enqueue runs 2,000 per round (its rate does not depend on N).
Goals: >= 20,000 workflows/s and >= 25x the sequential rate; enqueue_many >= 0.90 of the
server-side ceiling (Postgres running ``enqueue_workflow`` BULK times in one statement). The
operator's path (``DBOSBulkEnqueueOperator`` writes an owner record into DBOS' ``attributes``,
which the SQL function cannot take: ``DBOSClient.enqueue_in_transaction`` per item, one
transaction) is measured the same way, ``OWNER_ROUNDS`` rounds.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from bench.common_enqueue import UNPOLLED_QUEUE, clean, plain_client, portable_options
from bench.harness import Env, Row, bench_env, engine_for, median, report

BULK = 10_000
SEQUENTIAL = 2_000
ROUNDS = 5
OWNER_ROUNDS = 2
OWNER = {"airflow": {"dag_id": "p2", "run_id": "r", "task_id": "bulk", "map_index": -1, "conn_id": "dbos_bench"}}


def server_floor(env: Env, r: int) -> float:
    """Seconds Postgres alone needs for BULK calls of dbos.enqueue_workflow (one statement, no client work)."""
    engine = engine_for(env.system_database_url)
    try:
        with engine.begin() as conn:
            start = time.perf_counter()
            conn.execute(
                sa.text(
                    "SELECT count(dbos.enqueue_workflow('noop', :q, ARRAY[CAST(:r AS text)::json, g::text::json], "
                    "'{}'::json, workflow_id => 'floor-' || g)) FROM generate_series(1, :n) AS g"
                ),
                {"q": UNPOLLED_QUEUE, "r": r, "n": BULK},
            )
        return time.perf_counter() - start
    finally:
        engine.dispose()


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
        owner_rates: list[float] = []
        owned_options: dict[str, Any] = {**ours_options, "attributes": OWNER}
        for r in range(OWNER_ROUNDS):  # the operator's options: the owner record in attributes
            items = [{"args": [r, i], "workflow_id": f"owned-{r}-{i}"} for i in range(BULK)]
            start = time.perf_counter()
            hook.enqueue_many(owned_options, items)  # type: ignore[arg-type]
            owner_rates.append(BULK / (time.perf_counter() - start))
            clean(env)
        hook.close()
        plain.destroy()
    s, b, ceiling, owned = median(seq_rates), median(bulk_rates), median(floor_rates), median(owner_rates)
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
                f"{ceiling:,.0f}/s (ceiling)",
                f"{owned:,.0f}/s (enqueue_in_transaction per item: the SQL function takes no attributes)",
                f"{owned / ceiling:.2f}",
                f"{OWNER_ROUNDS} rounds",
                ">= 0.90",
                "met" if owned / ceiling >= 0.90 else "MISSED",
            ),
        ],
        {
            "sequential_per_s": seq_rates,
            "bulk_per_s": bulk_rates,
            "server_ceiling_per_s": floor_rates,
            "owner_record_per_s": owner_rates,
        },
    )


if __name__ == "__main__":
    main()
