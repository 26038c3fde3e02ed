"""Helpers the project's own test suites, benchmarks and scripts share (never published).

* :mod:`dbos_testkit.child_process`: one child process (a DBOS worker, Airflow, the TypeScript app)
  with its output kept and a ``wait_for(text)``;
* :mod:`dbos_testkit.airflow_stack`: a real Airflow deployment (api-server, scheduler,
  dag-processor, triggerer(s), workers) started as child processes, faults injected by pid;
* :mod:`dbos_testkit.private_postgres`: a private Postgres server a test may stop and restart;
* :mod:`dbos_testkit.notifications`: the messages DBOS holds for a workflow (what reached it, once).
* :mod:`dbos_testkit.tls_server`: a private Postgres that speaks only TLS, with certificates
  :mod:`dbos_testkit.tls_certs` makes with ``openssl``.

No module imports Airflow, Prefect or dbos at import time, so both front ends' venvs install it
(``make install`` and ``make install-prefect``).
"""
