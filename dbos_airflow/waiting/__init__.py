"""Old import paths: the waiter, feed and probe are :mod:`dbos_orchestrator.waiting`; the
trigger-event contract is :mod:`dbos_airflow.contract.events`."""
