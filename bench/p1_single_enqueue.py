"""P1: one enqueue at a time, through DBOSHook.enqueue vs plain dbos.DBOSClient.enqueue.

Both enqueue the same no-op workflow with portable serialization onto a queue nobody polls.
Within a round the two calls alternate one by one (plain, ours, plain, ...), each timed on its
own, so drift in the machine's load hits both alike; the figure is the median over rounds of
the mean time per enqueue, and the ratio the median of the per-round ratios. Goal: <= 1.05.

Two runs on one bench database (issue 26 §5):

* untraced: no span is current (the hook's tracing check finds nothing to hand on);
* traced: an OpenTelemetry SDK tracer provider is installed and a sampled span is current, as in an
  Airflow task with ``[traces] otel_on``. The hook hands it on by itself (``dbos_orchestrator.tracing``);
  the plain client is given the same context as ``otel_context`` by hand, which is what a user of
  ``dbos.DBOSClient`` does for one trace. Both store the traceparent in the workflow's attributes.
  The spans are dropped (no exporter): the figure is the enqueue, not the export.

OpenLineage acts in the operator, once per task (``operators/lineage.py``), not in ``DBOSHook.enqueue``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.common_enqueue import clean, plain_client, portable_options
from bench.harness import Row, bench_env, median, report

PER_ROUND = 100
ROUNDS = 21


def main() -> None:
    from dbos_airflow.hooks.dbos import DBOSHook

    rows: list[Row] = []
    details: dict[str, object] = {}
    with bench_env() as env:
        plain = plain_client(env)
        hook = DBOSHook(env.conn_id)
        for traced in (False, True):
            row, detail = _run(env, plain, hook, traced=traced)
            rows.append(row)
            details["traced" if traced else "untraced"] = detail
        hook.close()
        plain.destroy()
    report("p1", rows, details)


def _run(env: Any, plain: Any, hook: Any, *, traced: bool) -> tuple[Row, dict[str, list[float]]]:
    options = portable_options()
    ours_options = {k: v for k, v in options.items() if k != "serialization_type"}  # the hook's default
    with _current_span(traced) as otel_context:
        if otel_context is not None:
            options["otel_context"] = otel_context

        def one(call: Callable[[], object]) -> float:
            start = time.perf_counter()
            call()
            return time.perf_counter() - start

        def run_plain() -> object:
            return plain.enqueue(options)

        def run_ours() -> object:
            return hook.enqueue(ours_options)

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
    p, o = median(plain_times), median(ours_times)
    ratio = median(ratios)
    row = Row(
        "P1 single enqueue (time per enqueue)" + (", traced" if traced else ""),
        f"{p * 1000:.2f} ms ({1 / p:.0f}/s)" + (" (otel_context passed by hand)" if traced else ""),
        f"{o * 1000:.2f} ms ({1 / o:.0f}/s)" + (" (the current span found by DBOSHook.enqueue)" if traced else ""),
        f"{ratio:.3f}",
        f"{ROUNDS} rounds x {PER_ROUND}" + ("; a sampled span current" if traced else ""),
        "ratio <= 1.05",
        "met" if ratio <= 1.05 else "MISSED",
    )
    return row, {"plain_s": plain_times, "ours_s": ours_times, "ratios": ratios}


@contextlib.contextmanager
def _current_span(traced: bool) -> Iterator[Any]:
    """Nothing when untraced; else a sampled span of an SDK tracer provider, current, and its context."""
    if not traced:
        yield None
        return
    from opentelemetry import context
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("bench.p1")
    with tracer.start_as_current_span("worker.enqueue"):
        yield context.get_current()


if __name__ == "__main__":
    main()
