"""A small OTLP/HTTP trace receiver on loopback, for tests that check one trace across processes.

An OpenTelemetry collector binary is not installable here; this decodes what exporters send to
``POST /v1/traces`` (``application/x-protobuf``, optionally gzip) with the OpenTelemetry protobuf
package (``opentelemetry-proto``) and keeps every span::

    with OTLPReceiver() as receiver:
        ... point exporters at receiver.endpoint ...
        span = receiver.wait_for_span(lambda s: s.name == "wf_double", timeout=60)
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["OTLPReceiver", "ReceivedSpan"]


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as exported: ids in lowercase hex (``parent_span_id`` empty for a root span)."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    service: str
    attributes: dict[str, Any] = field(default_factory=dict)


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return None if kind is None else getattr(any_value, kind)


class OTLPReceiver:
    """An OTLP/HTTP receiver on ``127.0.0.1`` (a free port); a context manager that stops its server."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        self.spans: list[ReceivedSpan] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path.rstrip("/") != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver._add(request)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        """The traces endpoint to give an OTLP/HTTP exporter (``…/v1/traces``)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"

    def _add(self, request: Any) -> None:
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            service=str(resource.get("service.name", "")),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        with self._changed:
            self.spans.extend(received)
            self._changed.notify_all()

    def wait_for_span(self, match: Callable[[ReceivedSpan], bool], timeout: float, what: str = "") -> ReceivedSpan:
        """The first received span ``match`` accepts; waits up to ``timeout`` s (exporters batch)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((s for s in self.spans if match(s)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    names = sorted({f"{s.service}:{s.name}" for s in self.spans})
                    raise AssertionError(f"no span {what or 'matching'} after {timeout:.0f}s; received: {names}")
                self._changed.wait(left)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> OTLPReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
