"""dbos_orchestrator.tracing: which trace an enqueue hands on, and that nothing is imported without one."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from dbos_orchestrator.options import to_dbos_options
from dbos_orchestrator.tracing import (
    OTEL_ATTRIBUTE,
    current_context,
    trace_attributes,
    trace_id_from_attributes,
    trace_id_of,
    trace_link,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331
OPTIONS = {"workflow_name": "wf", "queue_name": "q"}


def _span(sampled: bool) -> Any:
    from opentelemetry import trace

    flags = trace.TraceFlags(trace.TraceFlags.SAMPLED if sampled else trace.TraceFlags.DEFAULT)
    return trace.NonRecordingSpan(trace.SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=flags))


@pytest.fixture
def sampled() -> Iterator[None]:
    from opentelemetry import trace

    with trace.use_span(_span(sampled=True)):
        yield


def test_without_opentelemetry_imported_nothing_is_imported_nor_added() -> None:
    code = (
        "import sys\n"
        "from dbos_orchestrator.options import to_dbos_options\n"
        "from dbos_orchestrator.tracing import trace_id_of\n"
        "opts = to_dbos_options({'workflow_name': 'wf', 'queue_name': 'q'})\n"
        "assert 'otel_context' not in opts and trace_id_of() is None, opts\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported opentelemetry'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_sampled_current_span_becomes_the_otel_context(sampled: None) -> None:
    options = to_dbos_options(dict(OPTIONS))
    assert options["otel_context"] is current_context()  # type: ignore[typeddict-item]
    assert trace_id_of() == format(TRACE_ID, "032x")
    carrier = trace_attributes()[OTEL_ATTRIBUTE]
    assert carrier["traceparent"] == f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"
    assert trace_id_from_attributes({OTEL_ATTRIBUTE: carrier}) == format(TRACE_ID, "032x")


def test_a_callers_own_otel_context_is_kept(sampled: None) -> None:
    mine = object()
    assert to_dbos_options({**OPTIONS, "otel_context": mine})["otel_context"] is mine  # type: ignore[typeddict-item]


def test_an_unsampled_or_absent_span_hands_on_nothing() -> None:
    from opentelemetry import trace

    # Airflow with [traces] otel_on off: a valid span context with flags 00 (DBOS would drop the spans).
    with trace.use_span(_span(sampled=False)):
        assert "otel_context" not in to_dbos_options(dict(OPTIONS))
        assert trace_attributes() == {} and trace_id_of() is None
    assert current_context() is None  # no span at all


@pytest.mark.parametrize(
    "attributes",
    [None, "x", {}, {OTEL_ATTRIBUTE: "00-abc"}, {OTEL_ATTRIBUTE: {"traceparent": "00-" + "0" * 32 + "-1-01"}}],
)
def test_attributes_without_a_trace_name_none(attributes: Any) -> None:
    assert trace_id_from_attributes(attributes) is None


def test_trace_link() -> None:
    assert trace_link("http://ui/trace/{trace_id}", "ab") == "http://ui/trace/ab"
    assert trace_link(None, "ab") is None and trace_link("http://ui/{trace_id}", None) is None
    assert trace_link("HTTPS://ui/{trace_id}", "ab") == "HTTPS://ui/ab"
    assert trace_link("javascript:alert('{trace_id}')", "ab") is None
