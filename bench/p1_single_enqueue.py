"""P1: one enqueue at a time, through DBOSHook.enqueue vs plain dbos.DBOSClient.enqueue.

Both enqueue the same no-op workflow with portable serialization onto a queue nobody polls.
Within a round the two calls alternate one by one (plain, ours, plain, ...), each timed on its
own, so drift in the machine's load hits both alike; the figure is the median over rounds of
the mean time per enqueue, and the ratio the median of the per-round ratios. Goal: <= 1.05.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.common_enqueue import clean, plain_client, portable_options
from bench.harness import Row, bench_env, median, report

PER_ROUND = 100
ROUNDS = 21


def main() -> None:
    from dbos_airflow.hooks.dbos import DBOSHook

    with bench_env() as env:
        plain = plain_client(env)
        hook = DBOSHook(env.conn_id)
        options = portable_options()
        ours_options = {k: v for k, v in options.items() if k != "serialization_type"}  # the hook's default

        def one(call: Callable[[], object]) -> float:
            start = time.perf_counter()
            call()
            return time.perf_counter() - start

        def run_plain() -> object:
            return plain.enqueue(options)

        def run_ours() -> object:
            return hook.enqueue(ours_options)  # type: ignore[arg-type]

        for _ in range(10):  # warm up: connect, prepare
            run_plain(), run_ours()
        clean(env)
        plain_times: list[float] = []
        ours_times: list[float] = []
        ratios: list[float] = []
        for r in range(ROUNDS):
            pair = (run_plain, run_ours) if r % 2 == 0 else (run_ours, run_plain)
            sums = {run_plain: 0.0, run_ours: 0.0}
            for _ in range(PER_ROUND):
                for call in pair:
                    sums[call] += one(call)
            plain_times.append(sums[run_plain] / PER_ROUND)
            ours_times.append(sums[run_ours] / PER_ROUND)
            ratios.append(sums[run_ours] / sums[run_plain])
            clean(env)
        hook.close()
        plain.destroy()
    p, o = median(plain_times), median(ours_times)
    ratio = median(ratios)
    report(
        "p1",
        [
            Row(
                "P1 single enqueue (time per enqueue)",
                f"{p * 1000:.2f} ms ({1 / p:.0f}/s)",
                f"{o * 1000:.2f} ms ({1 / o:.0f}/s)",
                f"{ratio:.3f}",
                f"{ROUNDS} rounds x {PER_ROUND}",
                "ratio <= 1.05",
                "met" if ratio <= 1.05 else "MISSED",
            )
        ],
        {"plain_s": plain_times, "ours_s": ours_times, "ratios": ratios},
    )


if __name__ == "__main__":
    main()
