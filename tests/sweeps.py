"""What Airflow keeps of a ``dag.test()`` run, as text, for the secret sweeps: a connection's password
(tests/test_credentials.py) and a client key given as PEM text (tests/integration/test_tls.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable


def trigger_ids() -> set[int]:
    """The ids of the triggers Airflow stores now (a run's own are those not among them before it)."""
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    with create_session() as session:
        return {t.id for t in session.query(Trigger).all()}


def kept_by_airflow(dr: Any, before: set[int]) -> dict[str, list[str]]:
    """Every XCom, rendered template field and trigger kwargs of the run ``dr``, as text; triggers
    whose ids are in ``before`` (:func:`trigger_ids` taken before the run) are left out."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcoms = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id).all()
        rendered = session.query(RenderedTaskInstanceFields).filter_by(dag_id=dr.dag_id, run_id=dr.run_id).all()
        triggers = session.query(Trigger).filter(Trigger.id.not_in(before)).all()
        return {
            "xcom": [f"{x.task_id}/{x.key}={json.dumps(x.value, default=str)}" for x in xcoms],
            "rendered": [f"{r.task_id}: {json.dumps(r.rendered_fields, default=str)}" for r in rendered],
            "trigger": [f"{t.classpath}: {t.encrypted_kwargs} {json.dumps(t.kwargs, default=str)}" for t in triggers],
        }


def leaks(secrets: Iterable[str], where: dict[str, Iterable[str]]) -> list[str]:
    """``"<where>: <text>"`` for every text of ``where`` that contains one of ``secrets`` (none: [])."""
    secrets = [s for s in secrets if s]
    return [
        f"{name}: {text[:300]}" for name, texts in where.items() for text in texts if any(s in text for s in secrets)
    ]
