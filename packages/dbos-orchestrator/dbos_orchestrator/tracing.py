"""The caller's OpenTelemetry trace, handed to the workflows it starts (one trace across both engines).

DBOS (3.4) takes an ``otel_context`` enqueue option: it stores the W3C ``traceparent`` of that
context in the workflow's ``attributes["dbos.otelContext"]``, and a worker with OTLP export on
starts the workflow's span as a child of it. This module is the only place that decides whether
there is a trace to hand on, and the only one that touches OpenTelemetry:

* OpenTelemetry not imported by anything in this process (not installed, or nobody traces):
  nothing is imported and nothing is added (one ``sys.modules`` look-up);
* no current span, or a span that is not sampled (Airflow with ``[traces] otel_on`` off still
  makes a non-recording ``…-00`` span, and DBOS' parent-based sampler would then drop the
  workflow's spans): nothing is added;
* else the current context goes into the options, and its trace id is what XCom, artifacts and the
  DBOS tab show.

A fork gets no ``otel_context`` from dbos (its ``fork_workflow`` copies the original's attributes,
its ``dbos.otelContext`` included): :func:`trace_attributes` is what the service writes over the
copy right after the fork (see ``DBOSService.fork_workflow``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

__all__ = [
    "OTEL_ATTRIBUTE",
    "current_context",
    "trace_attributes",
    "trace_id_from_attributes",
    "trace_id_of",
    "trace_link",
    "with_current_context",
]

# Where DBOS keeps a workflow's parent trace (dbos/_enqueue_options.py, attributes_with_otel_context).
OTEL_ATTRIBUTE = "dbos.otelContext"


def current_context() -> Any | None:
    """The current OpenTelemetry context if it holds a valid, sampled span; else None.

    Imports nothing when no module of this process imported OpenTelemetry: then no span can be current.
    """
    if "opentelemetry.trace" not in sys.modules:
        return None
    from opentelemetry import context, trace

    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid or not span_context.trace_flags.sampled:
        return None
    return context.get_current()


def with_current_context(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with ``otel_context`` set to the current trace (a caller's own value is kept)."""
    if options.get("otel_context") is None:
        found = current_context()
        if found is not None:
            options["otel_context"] = found
    return options


def trace_id_of(otel_context: Any | None = None) -> str | None:
    """The 32-hex-digit trace id of ``otel_context`` (default: the current one), or None."""
    found = current_context() if otel_context is None else otel_context
    if found is None:
        return None
    from opentelemetry import trace

    span_context = trace.get_current_span(found).get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def trace_attributes(otel_context: Any | None = None) -> dict[str, Any]:
    """``{"dbos.otelContext": {"traceparent": ...}}`` for ``otel_context`` (default: the current one);
    empty without a trace. The carrier is W3C trace context only, as DBOS writes it."""
    found = current_context() if otel_context is None else otel_context
    if found is None:
        return {}
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=found)
    return {OTEL_ATTRIBUTE: carrier} if carrier.get("traceparent") else {}


def trace_id_from_attributes(attributes: Any) -> str | None:
    """The trace id a workflow's ``attributes`` name (its ``dbos.otelContext`` traceparent), or None."""
    if not isinstance(attributes, Mapping):
        return None
    carrier = attributes.get(OTEL_ATTRIBUTE)
    parent = carrier.get("traceparent") if isinstance(carrier, Mapping) else None
    parts = parent.split("-") if isinstance(parent, str) else []
    if len(parts) != 4 or len(parts[1]) != 32 or set(parts[1]) - set("0123456789abcdef") or parts[1] == "0" * 32:
        return None
    return parts[1]


def trace_link(template: str | None, trace_id: str | None) -> str | None:
    """The user's trace UI link: ``template`` with ``{trace_id}`` replaced; None without either, and
    for a template that is not an ``http(s)://`` URL (a ``javascript:`` link never reaches a page)."""
    if not template or not trace_id or not template.lower().startswith(("http://", "https://")):
        return None
    return template.replace("{trace_id}", trace_id)
