"""`make demo`'s event-driven step: fire the incident DAG's DBOS completion watcher once.

    python scripts/demo_watcher.py    # with the demo's Airflow environment (AIRFLOW_CONN_DBOS_DEFAULT)

An asset-triggered DAG needs a running triggerer and scheduler, which ``airflow dags test``
does not have. This script runs the very trigger that dags/dbos_order_incident.py gives its
``AssetWatcher`` (as the triggerer would, with an in-memory watermark), makes an order refund
fail on the example worker, and prints the asset event's payload as ``EVENT {json}``;
scripts/demo.py then runs the incident DAG with that payload.
"""

from __future__ import annotations

import asyncio
import json
import runpy
import sys
from pathlib import Path
from typing import Any

DAG_FILE = Path(__file__).resolve().parent.parent / "dags" / "dbos_order_incident.py"


class _MemoryStateStore:
    """The ``aget``/``aset`` of Airflow's asset_state_store, in memory (the triggerer keeps it in its DB)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.data[key] = value


async def fire(order_id: str = "R-9", amount: float = 500.0, timeout: float = 60) -> dict[str, Any]:
    from dbos_airflow.hooks.dbos import DBOSHook

    trigger = runpy.run_path(str(DAG_FILE))["failed_orders"].watchers[0].trigger
    trigger.asset_state_store = _MemoryStateStore()
    events = trigger.run()
    first = asyncio.ensure_future(events.__anext__())
    await asyncio.sleep(1.0)  # the watcher has stored its starting point: completions from now on
    async with DBOSHook() as hook:
        handle = await hook.enqueue_async({"workflow_name": "refund_order", "queue_name": "orders"}, order_id, amount)
    print(f"enqueued refund_order {handle.workflow_id} (refund {amount:.2f} for {order_id}: over the limit)")
    try:
        event = await asyncio.wait_for(first, timeout)
    finally:
        await events.aclose()
    return dict(event.payload)


def main() -> int:
    payload = asyncio.run(fire())
    print("EVENT " + json.dumps(payload), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
