"""P1: one enqueue at a time, through DBOSHook.enqueue vs plain dbos.DBOSClient.enqueue.

Both enqueue the same no-op workflow with portable serialization onto a queue nobody polls, N
per round, alternating which goes first; the figure is the median over rounds of the mean
time per enqueue. Goal: ours / plain <= 1.05.
"""

from __future__ import annotations

import time

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

        def run_plain() -> float:
            start = time.perf_counter()
            for _ in range(PER_ROUND):
                plain.enqueue(options)
            return (time.perf_counter() - start) / PER_ROUND

        def run_ours() -> float:
            start = time.perf_counter()
            for _ in range(PER_ROUND):
                hook.enqueue(ours_options)  # type: ignore[arg-type]
            return (time.perf_counter() - start) / PER_ROUND

        run_plain(), run_ours()  # warm up: connect, prepare
        clean(env)
        plain_times: list[float] = []
        ours_times: list[float] = []
        for r in range(ROUNDS):
            for name in (("plain", "ours") if r % 2 == 0 else ("ours", "plain")):
                (plain_times if name == "plain" else ours_times).append(run_plain() if name == "plain" else run_ours())
                clean(env)
        hook.close()
        plain.destroy()
    p, o = median(plain_times), median(ours_times)
    ratio = o / p
    report("p1", [Row(
        "P1 single enqueue (time per enqueue)",
        f"{p * 1000:.2f} ms ({1 / p:.0f}/s)",
        f"{o * 1000:.2f} ms ({1 / o:.0f}/s)",
        f"{ratio:.3f}", f"{ROUNDS} rounds x {PER_ROUND}", "ratio <= 1.05", "met" if ratio <= 1.05 else "MISSED",
    )], {"plain_s": plain_times, "ours_s": ours_times})


if __name__ == "__main__":
    main()
