"""Runs one DAG of tests/dags/observability with ``dag.test()`` in this process (tests/integration/test_lineage.py).

OpenLineage reads its configuration once per process (its ``conf`` readers are cached) and its
listener then runs for every task: a child process keeps the rest of the suite free of it.
Argv: the DAG id, then ``with`` (the provider as installed; the caller sets its transport) or
``without`` (the provider made unimportable, as in an installation without the extra).
Prints ``RUN <json>``: the run id, its state, and whether any OpenLineage module was imported.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _uninstall_openlineage() -> None:
    """This process sees no OpenLineage distribution (no provider entry point, no plugin) and can
    import none of its modules: what an installation without ``dbos-airflow[openlineage]`` is."""
    import importlib.metadata

    import importlib_metadata  # Airflow reads entry points through this backport

    for metadata in (importlib.metadata, importlib_metadata):
        everything = metadata.distributions

        def distributions(everything: Any = everything, **kwargs: Any) -> Any:
            return (d for d in everything(**kwargs) if "openlineage" not in (d.metadata["Name"] or "").lower())

        metadata.distributions = distributions  # type: ignore[assignment]
    for name in ("airflow.providers.openlineage", "openlineage"):
        sys.modules[name] = None  # type: ignore[assignment]  # import fails, find_spec says "not installed"


def main() -> None:
    dag_id, mode = sys.argv[1], sys.argv[2]
    if mode == "without":
        _uninstall_openlineage()
    path = HERE.parent / "dags" / "observability" / "dbos_observability_dags.py"
    spec = importlib.util.spec_from_file_location("dbos_observability_dags", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = next(d for d in vars(module).values() if getattr(d, "dag_id", None) == dag_id)
    run = dag.test()
    # The provider's and the client's modules (not common.compat's shims, which Airflow itself loads).
    ours = ("openlineage.", "airflow.providers.openlineage")
    loaded = sorted(m for m, v in sys.modules.items() if v is not None and (m == "openlineage" or m.startswith(ours)))
    print(
        "RUN "
        + json.dumps(
            {
                "run_id": run.run_id,
                "state": str(run.state),
                "openlineage_modules": loaded,
                "assets": _asset_events(run.run_id),
            }
        )
    )


def _asset_events(run_id: str) -> dict[str, Any]:
    """The ``extra`` of each asset event the run emitted, by asset URI."""
    import sqlalchemy as sa
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.execute(
            sa.select(AssetModel.uri, AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetEvent.source_run_id == run_id)
        ).all()
    return {uri: extra for uri, extra in rows}


if __name__ == "__main__":
    main()
