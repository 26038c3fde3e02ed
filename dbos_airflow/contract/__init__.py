"""The two-engine contract, one module per rule (docs/architecture.md, "The two-engine contract").

* :mod:`~dbos_airflow.contract.ids`: the workflow id derived from a task instance (enqueued once), or
  from the DBOS completion that triggered the run (``id_from="completion"``: its work done once).
* :mod:`dbos_orchestrator.retry` (the core's, shared with prefect-dbos): what a later try does with the
  workflow it started (``retry_mode``).
* :mod:`~dbos_airflow.contract.kill`: whether a stopped task cancels its workflow.
* :mod:`~dbos_airflow.contract.events`: what a trigger yields, and which task result each event becomes.
* :mod:`dbos_orchestrator.outcome` (the core's, through the hook's service, which raises Airflow's error
  types): how an ended workflow (or a batch) becomes a task result or failure.
* :mod:`~dbos_airflow.contract.deferral`: when a deferrable task defers, and when its trigger may fire.
* :mod:`~dbos_airflow.contract.ownership`: which task instance owns a workflow (the record the UI trusts).
"""
