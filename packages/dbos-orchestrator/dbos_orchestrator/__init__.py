"""dbos-orchestrator: the DBOS client side that orchestrator front ends (Airflow, Prefect) share.

No orchestrator is imported here or below: statuses, the sentences of a wait, form values, the
documented ``DBOSClient``, the store (safe value reader, bulk writer) and the shared waiter.
"""

from __future__ import annotations

__version__ = "0.1.0"
