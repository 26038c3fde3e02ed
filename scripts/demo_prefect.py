"""`make demo-prefect`: the example DBOS worker driven by Prefect flows (prefect-dbos), one row per flow.

    .venv-prefect/bin/python scripts/demo_prefect.py

The same system database as `make demo` (``$DBOS_SYSTEM_DATABASE_URL``, else ``.demo/dbos.sqlite``) and
the same example worker (examples/order_worker.py); a temporary Prefect server (``prefect_test_harness``,
no server to start by hand). Exits 1 if a flow failed.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from typing import Any

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-dbos-demo-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from dbos_testkit import local_stack  # noqa: E402
from prefect import flow  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402
from prefect_dbos import (  # noqa: E402
    DBOSSystemDatabase,
    aenqueue_workflow,
    asend_message,
    await_workflow,
    await_workflow_event,
    run_dbos_workflow_and_wait_for_completion,
)

QUEUE = "orders"
ORDER = {"order_id": "P-100", "items": [{"sku": "gizmo", "qty": 2}, {"sku": "widget", "qty": 10}]}


@flow
async def quote(database: DBOSSystemDatabase) -> Any:
    return await run_dbos_workflow_and_wait_for_completion(
        database, QUEUE, "quote_order", [ORDER], options={"app_version": "orders-1"}
    )


@flow
async def approve_and_ship(database: DBOSSystemDatabase) -> Any:
    wid = await aenqueue_workflow(database, QUEUE, "process_order", [ORDER], options={"app_version": "orders-1"})
    await await_workflow_event(database, wid, "status", timeout=120)
    await asend_message(database, wid, {"approved": True, "by": "prefect-demo"}, topic="approval")
    return await await_workflow(database, wid, timeout=120)


async def main() -> int:
    url = local_stack.system_database_url()
    database = DBOSSystemDatabase(system_database_url=url)
    rows = []
    for name, run in (("quote", quote), ("approve_and_ship", approve_and_ship)):
        started = time.monotonic()
        state = await run(database, return_state=True)
        result = await state.result(raise_on_failure=False)
        rows.append((name, state.name, str(result)[:90], time.monotonic() - started))
    print(f"{'flow':<18} {'state':<10} {'seconds':>7}  result")
    for name, state_name, result, seconds in rows:
        print(f"{name:<18} {state_name:<10} {seconds:7.1f}  {result}")
    return 0 if all(r[1] == "Completed" for r in rows) else 1


if __name__ == "__main__":
    demo_dir = local_stack.DEMO_DIR
    worker = local_stack.start_worker(local_stack.system_database_url(), demo_dir / "logs" / "prefect-worker.log")
    try:
        with prefect_test_harness(server_startup_timeout=120):
            code = asyncio.run(main())
    finally:
        worker.stop()
    raise SystemExit(code)
