"""The example DBOS application (the worker) that the demo, the example DAGs and docker-compose run.

    DBOS_SYSTEM_DATABASE_URL=sqlite:////abs/path/dbos.sqlite python examples/order_worker.py
    DBOS_SYSTEM_DATABASE_URL=postgresql://postgres@localhost:5432/orders_dbos_sys python examples/order_worker.py

An order-processing service. Airflow reaches it only through the DBOS system database:

* ``quote_order(order)`` prices an order in three steps and returns a JSON quote.
* ``process_order(order, approval_timeout_seconds=3600)`` validates, reserves stock, publishes its
  progress as the ``status`` event (``validated``, ``reserved``, ``awaiting_approval``, ...), asks for
  approval (the ``approval_request`` event: the question Airflow's Required Actions shows), waits for the
  answer on the ``approval`` topic (an approval operator's answer, or ``{"approved": true, "by": "alice"}``),
  charges, ships and returns a JSON summary.
* ``refund_order(order_id, amount)`` fails with a clear error for refunds above ``REFUND_LIMIT``.
* ``open_incident(workflow_id, workflow_name, error)`` opens one incident for a failed order workflow
  (the incident DAG, dags/dbos_order_incident.py, enqueues it once per failed workflow).
* ``Warehouse.pack(order)`` is a class-based workflow: enqueue it as ``workflow_name="Warehouse.pack"``
  with ``workflow_class_name="Warehouse"``.

Every workflow takes and returns JSON values, as Airflow enqueues with DBOS portable JSON.
It prints ``WORKER READY ...`` once launched and its queue is registered, and exits cleanly on SIGTERM.
Never import this module from Airflow code: it constructs the DBOS singleton.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from dbos import DBOS, DBOSConfig

APP_NAME = "dbos-airflow-example"
APP_VERSION = "orders-1"  # pinned: workers of another version would never dequeue these workflows
QUEUE = "orders"
PRICES = {"widget": 2.5, "gadget": 12.0, "gizmo": 40.0}
TAX_RATE = 0.08
REFUND_LIMIT = 100.0


class OrderError(Exception):
    """An order the application refuses; its message reaches the Airflow task log."""


# -- steps ------------------------------------------------------------------------------------


@DBOS.step()
def validate(order: dict[str, Any]) -> list[dict[str, Any]]:
    order_id = order.get("order_id")
    items = order.get("items") or []
    if not order_id or not items:
        raise OrderError(f"order {order_id!r} needs an order_id and at least one item")
    for item in items:
        if item.get("sku") not in PRICES:
            raise OrderError(f"order {order_id}: unknown sku {item.get('sku')!r}; known: {sorted(PRICES)}")
        if int(item.get("qty", 0)) <= 0:
            raise OrderError(f"order {order_id}: sku {item['sku']} has qty {item.get('qty')!r}; it must be >= 1")
    return [{"sku": i["sku"], "qty": int(i["qty"])} for i in items]


@DBOS.step()
def price(items: list[dict[str, Any]]) -> float:
    return round(sum(PRICES[i["sku"]] * i["qty"] for i in items), 2)


@DBOS.step()
def reserve_stock(order_id: str, items: list[dict[str, Any]]) -> str:
    DBOS.logger.info("reserved %s item(s) for order %s", sum(i["qty"] for i in items), order_id)
    return f"rsv-{order_id}"


@DBOS.step()
def charge(order_id: str, amount: float) -> str:
    DBOS.logger.info("charged %.2f for order %s", amount, order_id)
    return f"pay-{order_id}"


@DBOS.step()
def ship(order_id: str) -> str:
    return f"trk-{order_id}"


# -- workflows --------------------------------------------------------------------------------


def _quote(order: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    items = validate(order)
    subtotal = price(items)
    tax = round(subtotal * TAX_RATE, 2)
    quote = {
        "order_id": order["order_id"],
        "items": len(items),
        "subtotal": subtotal,
        "tax": tax,
        "total": round(subtotal + tax, 2),
    }
    return items, quote


@DBOS.workflow()
def quote_order(order: dict[str, Any]) -> dict[str, Any]:
    """Price an order: validate, price, tax. Returns the quote."""
    DBOS.set_event("status", "quoting")
    _, quote = _quote(order)
    DBOS.set_event("status", "quoted")
    return quote


def _decision(decision: Any) -> tuple[bool, str]:
    """``(approved, by whom)`` from an answer of Airflow's Required Actions (``{"chosen_options": [...],
    "responded_by": {...}}``) or a plain message (``{"approved": true, "by": "alice"}``)."""
    if isinstance(decision, dict) and "chosen_options" in decision:
        who = decision.get("responded_by") or {}
        by = "timeout default" if decision.get("timed_out") else str(who.get("name") or who.get("id") or "unknown")
        return "Approve" in decision["chosen_options"], by
    if isinstance(decision, dict):
        return bool(decision.get("approved")), str(decision.get("by", "unknown"))
    return bool(decision), "unknown"


@DBOS.workflow()
def nightly_report(scheduled_time: Any, context: Any) -> dict[str, Any]:
    """Run by a DBOS schedule (dags/dbos_schedules_and_retention.py applies it): DBOS passes the time and context."""
    return {"report_for": str(scheduled_time), "context": context}


@DBOS.workflow()
def process_order(order: dict[str, Any], approval_timeout_seconds: float = 3600) -> dict[str, Any]:
    """Validate, reserve, wait for an approval message, charge and ship an order."""
    items, quote = _quote(order)
    DBOS.set_event("status", "validated")
    reservation = reserve_stock(quote["order_id"], items)
    DBOS.set_event("status", "reserved")
    # The question a person answers in Airflow's Required Actions (docs/approvals.md).
    DBOS.set_event(
        "approval_request",
        {
            "subject": f"Ship order {quote['order_id']} ({quote['total']:.2f})?",
            "body": "\n".join(f"* {item['qty']} x {item['sku']}" for item in items),
            # Optional ("null" in its type): Airflow's form requires a plain "string" field before the
            # Approve/Reject buttons are enabled.
            "params": {"note": {"type": ["null", "string"], "default": None, "description": "A note for the customer"}},
        },
    )
    DBOS.set_event("status", "awaiting_approval")
    decision = DBOS.recv("approval", timeout_seconds=approval_timeout_seconds)
    if decision is None:
        DBOS.set_event("status", "approval_timed_out")
        raise OrderError(f"order {quote['order_id']}: no approval within {approval_timeout_seconds} s")
    approved, approver = _decision(decision)
    if not approved:
        DBOS.set_event("status", "rejected")
        return {**quote, "status": "rejected", "rejected_by": approver, "reservation": reservation}
    DBOS.set_event("status", "approved")
    payment = charge(quote["order_id"], quote["total"])
    tracking = ship(quote["order_id"])
    DBOS.set_event("status", "shipped")
    return {**quote, "status": "shipped", "approved_by": approver, "payment": payment, "tracking": tracking}


@DBOS.workflow()
def refund_order(order_id: str, amount: float) -> dict[str, Any]:
    """Refund an order; above REFUND_LIMIT it fails with a clear error (the failing example)."""
    if amount > REFUND_LIMIT:
        raise OrderError(
            f"refund of {amount:.2f} for order {order_id} exceeds the {REFUND_LIMIT:.2f} limit "
            "for automatic refunds; ask a human"
        )
    return {"order_id": order_id, "refunded": amount}


@DBOS.step()
def page_on_call(workflow_id: str, workflow_name: str | None, error: str | None) -> str:
    DBOS.logger.info("incident for %s %s: %s", workflow_name, workflow_id, error)
    return f"INC-{workflow_id}"


@DBOS.workflow()
def open_incident(workflow_id: str, workflow_name: str | None, error: str | None) -> dict[str, Any]:
    """Open one incident for a failed order workflow (stands in for paging someone)."""
    incident = page_on_call(workflow_id, workflow_name, error)
    return {"incident": incident, "workflow_id": workflow_id, "workflow": workflow_name}


@DBOS.workflow()
def pick_orders(orders: list[dict[str, Any]], seconds_per_order: float = 0.5) -> dict[str, Any]:
    """Pick a batch of orders, reporting progress on stream ``progress`` (one value per order,
    written from the workflow body so a retried step cannot write it twice), then close it."""
    picked = 0
    for n, order in enumerate(orders, start=1):
        items = validate(order)
        picked += sum(i["qty"] for i in items)
        DBOS.sleep(seconds_per_order)
        DBOS.write_stream("progress", {"order_id": order["order_id"], "done": n, "of": len(orders), "units": picked})
    DBOS.close_stream("progress")
    return {"orders": len(orders), "units": picked}


@DBOS.dbos_class()
class Warehouse:
    """Class-based workflows: ``workflow_name="Warehouse.pack"``, ``workflow_class_name="Warehouse"``."""

    parcel_capacity = 10

    @classmethod
    @DBOS.workflow()
    def pack(cls, order: dict[str, Any]) -> dict[str, Any]:
        items = validate(order)
        units = sum(i["qty"] for i in items)
        parcels = -(-units // cls.parcel_capacity)
        return {"order_id": order["order_id"], "units": units, "parcels": parcels}


# -- process ----------------------------------------------------------------------------------


def main() -> None:
    url = os.environ.get("DBOS_SYSTEM_DATABASE_URL")
    if not url:
        raise SystemExit(
            "set DBOS_SYSTEM_DATABASE_URL, e.g. sqlite:////tmp/dbos.sqlite or "
            "postgresql://postgres@localhost:5432/orders_dbos_sys"
        )
    config: DBOSConfig = {
        "name": APP_NAME,
        "system_database_url": url,
        "application_version": APP_VERSION,
        "executor_id": os.environ.get("DBOS_EXECUTOR_ID", "example-worker"),
    }
    DBOS(config=config)
    DBOS.launch()
    DBOS.register_queue(QUEUE, polling_interval_sec=0.5)
    print(f"WORKER READY app={APP_NAME} version={APP_VERSION} queue={QUEUE}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1):
        pass
    DBOS.destroy(destroy_registry=False)
    time.sleep(0.1)
    # A workflow blocked in recv() keeps a thread alive after destroy(): leave without waiting for it.
    os._exit(0)


if __name__ == "__main__":
    main()
