"""The core as a whole, run in both front ends' virtualenvs (docs/architecture.md, "Layers"): importing it
pulls in no orchestrator. Each module's own rules are in test_<module>.py beside this file (store/, waiting/
for those folders); `make test` runs them in the Airflow venv and again in the Prefect venv.
"""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_core_pulls_in_no_orchestrator() -> None:
    """Every module of the core imports in a fresh interpreter without Airflow, Prefect or the provider."""
    code = (
        "import importlib, pkgutil, sys, dbos_orchestrator\n"
        "for m in pkgutil.walk_packages(dbos_orchestrator.__path__, 'dbos_orchestrator.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & {'airflow', 'prefect', 'dbos_airflow', 'prefect_dbos'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
