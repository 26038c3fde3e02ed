"""Old import path of the DBOS task bases, which are now :mod:`dbos_airflow.operators.base` and
:mod:`dbos_airflow.operators.waiting`.

``class X(DBOSOperatorMixin, BaseOperator)`` and ``class X(DBOSWaitMixin, BaseOperator)`` keep
working: the old names are the new base operators (subclasses of ``BaseOperator`` themselves).
"""

from __future__ import annotations

from dbos_orchestrator.retry import RETRY_MODES

from dbos_airflow.operators.base import UI_COLOR, DBOSBaseOperator, DBOSTaskMixin, dbos_template_fields
from dbos_airflow.operators.waiting import DBOSWaitingOperator

__all__ = [
    "RETRY_MODES",
    "UI_COLOR",
    "DBOSOperatorMixin",
    "DBOSTaskMixin",
    "DBOSWaitMixin",
    "dbos_template_fields",
]

DBOSOperatorMixin = DBOSBaseOperator
DBOSWaitMixin = DBOSWaitingOperator
