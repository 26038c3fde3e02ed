"""A Prefect flow run traced by OpenTelemetry (tests/test_tracing.py runs it in its own process).

Prefect starts a span per flow and task run once an SDK tracer provider is installed; that global
provider lasts for the process, hence a child process: the rest of the suite runs untraced.
Argv: the system database URL, the OTLP/HTTP traces endpoint. Prints the workflow ids as JSON.
"""

from __future__ import annotations

import json
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prefect import flow

from prefect_dbos import DBOSSystemDatabase
from prefect_dbos.tasks import aenqueue_workflow, aenqueue_workflows, await_workflow, await_workflows


@flow
async def traced(database: DBOSSystemDatabase) -> dict[str, object]:
    one = await aenqueue_workflow(database, "q", "wf_double", [21])
    many = await aenqueue_workflows(database, "q", "wf_double", [[1], [2]])
    await await_workflow(database, one)
    await await_workflows(database, many)
    return {"one": one, "many": many}


def main() -> None:
    provider = TracerProvider(resource=Resource({"service.name": "prefect"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=sys.argv[2])))
    trace.set_tracer_provider(provider)
    import asyncio

    database = DBOSSystemDatabase(system_database_url=sys.argv[1], trace_url="http://traces.example/{trace_id}")
    ids = asyncio.run(traced(database))
    provider.shutdown()
    print("IDS " + json.dumps(ids), flush=True)


if __name__ == "__main__":
    main()
