"""One trace across Airflow and DBOS (docs/observability.md): a real DBOS worker exporting OTLP/HTTP to a
receiver on loopback, Airflow tasks run by ``dag.test()`` inside a task span the test exports to the same
receiver, and the workflow's root span must be that task span's child.

``dag.test()`` runs no ``worker.<task_id>`` span of its own (Airflow starts it in the task runner's
``main()``, which the in-process test supervisor skips), so the test makes the span current the way the
task runner does, around the run; the operators read whatever span is current.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

import pytest
from conftest import ROOT

from integration.conftest import TRACE_URL

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from conftest import Worker
    from dbos_testkit.otlp_receiver import OTLPReceiver, ReceivedSpan

SPAN_WAIT = 90  # DBOS' batch processor exports every few seconds; a loaded machine takes longer


@pytest.fixture(scope="module")
def tracer(otlp_receiver: OTLPReceiver) -> Iterator[Any]:
    """A tracer exporting each span as it ends to the receiver (Airflow's exporter settings: OTLP/HTTP)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource({"service.name": "airflow"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp_receiver.endpoint)))
    yield provider.get_tracer("airflow")
    provider.shutdown()


def _dag(dag_id: str) -> Any:
    path = ROOT / "tests" / "dags" / "observability" / "dbos_observability_dags.py"
    spec = importlib.util.spec_from_file_location("dbos_observability_dags", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(d for d in vars(module).values() if getattr(d, "dag_id", None) == dag_id)


def _run_in_span(tracer: Any, dag_id: str, task_id: str, **conf: Any) -> tuple[Any, Any]:
    with tracer.start_as_current_span(f"worker.{task_id}") as span:
        run = _dag(dag_id).test(run_conf=conf or None)
    assert run.state == "success", f"{dag_id}: {run.state}"
    return run, span.get_span_context()


def _workflow_span(receiver: OTLPReceiver, workflow_id: str) -> ReceivedSpan:
    return receiver.wait_for_span(
        lambda s: s.service == "dbos-airflow-tests" and s.attributes.get("operationUUID") == workflow_id,
        SPAN_WAIT,
        f"of workflow {workflow_id}",
    )


def _assert_child(span: ReceivedSpan, parent: Any) -> None:
    assert span.trace_id == format(parent.trace_id, "032x")
    assert span.parent_span_id == format(parent.span_id, "016x")


def _xcom(run: Any, task_id: str, key: str) -> Any:
    ti = next(t for t in run.get_task_instances() if t.task_id == task_id)
    return ti.xcom_pull(task_ids=task_id, key=key)


@pytest.mark.parametrize("dag_id", ["dbos_t_trace_sync", "dbos_t_trace_deferred"])
def test_the_workflow_span_is_a_child_of_the_task_span(
    airflow_db: Path, traced_worker: Worker, otlp_receiver: OTLPReceiver, tracer: Any, dag_id: str
) -> None:
    run, parent = _run_in_span(tracer, dag_id, "enqueue")
    workflow_id = f"{dag_id}:{run.run_id}:enqueue:-1"
    _assert_child(_workflow_span(otlp_receiver, workflow_id), parent)
    assert _xcom(run, "enqueue", "otel_trace_id") == format(parent.trace_id, "032x")


def test_every_workflow_of_a_bulk_enqueue_is_a_child_of_the_task_span(
    airflow_db: Path, traced_worker: Worker, otlp_receiver: OTLPReceiver, tracer: Any
) -> None:
    run, parent = _run_in_span(tracer, "dbos_t_trace_bulk", "bulk")
    for index in range(3):
        _assert_child(_workflow_span(otlp_receiver, f"dbos_t_trace_bulk:{run.run_id}:bulk:-1:{index}"), parent)


def test_a_fork_joins_the_forking_task_trace_not_the_original(
    airflow_db: Path, traced_worker: Worker, otlp_receiver: OTLPReceiver, tracer: Any
) -> None:
    first, first_parent = _run_in_span(tracer, "dbos_t_trace_sync", "enqueue")
    source = f"dbos_t_trace_sync:{first.run_id}:enqueue:-1"
    run, parent = _run_in_span(tracer, "dbos_t_trace_fork", "fork", source=source)
    assert parent.trace_id != first_parent.trace_id
    fork_id = _xcom(run, "fork", "workflow_id")
    span = _workflow_span(otlp_receiver, fork_id)
    # The carrier is written just after dbos' fork (which copies the original's): a worker that
    # dequeued the fork in between would start it in the original's trace, and the service logs it.
    _assert_child(span, parent)


def test_a_later_try_keeps_the_workflow_in_its_first_trace(
    airflow_db: Path, traced_worker: Worker, otlp_receiver: OTLPReceiver, tracer: Any
) -> None:
    from dbos_airflow.hooks.dbos import DBOSHook

    run, parent = _run_in_span(tracer, "dbos_t_trace_sync", "enqueue")
    workflow_id = f"dbos_t_trace_sync:{run.run_id}:enqueue:-1"
    hook = DBOSHook("dbos_otel")
    try:
        before = hook.get_client().list_workflows(workflow_ids=[workflow_id])[0].attributes
        with tracer.start_as_current_span("worker.enqueue.retry"):  # the task's second try
            for mode in ("resume", "restart"):
                hook.enqueue_or_reattach(
                    {"workflow_name": "wf_double", "queue_name": "q", "workflow_id": workflow_id}, [21], retry_mode=mode
                )
        after = hook.get_client().list_workflows(workflow_ids=[workflow_id])[0].attributes
    finally:
        hook.close()
    assert after["dbos.otelContext"] == before["dbos.otelContext"]
    assert format(parent.trace_id, "032x") in after["dbos.otelContext"]["traceparent"]


def test_the_dbos_view_shows_the_trace_and_links_it(airflow_db: Path, traced_worker: Worker, tracer: Any) -> None:
    """docs/observability.md, "What you see": the DBOS tab of a traced workflow names its trace id, linked
    through the connection's ``trace_url`` extra."""
    import re

    from dbos_airflow.hooks.dbos import DBOSHook
    from dbos_airflow.plugin import data, render

    run, parent = _run_in_span(tracer, "dbos_t_trace_sync", "enqueue")
    trace_id = format(parent.trace_id, "032x")
    with DBOSHook("dbos_otel") as hook:
        status = data.status_of(hook, f"dbos_t_trace_sync:{run.run_id}:enqueue:-1")
        assert status is not None
        html = render.workflow_page(data.workflow_detail(hook, status), str, can_act=False, task_link=None, static="")
    [cell] = re.findall(r'<td id="dbos-trace">(.*?)</td>', html)
    assert cell == (
        f'<a href="{TRACE_URL.replace("{trace_id}", trace_id)}" target="_blank" rel="noopener noreferrer">{trace_id}</a>'
    )
