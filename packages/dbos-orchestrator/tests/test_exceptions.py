"""The core's errors (dbos_orchestrator/exceptions.py): a clearer error that replaces a driver's is still caught
as the driver's (``except OperationalError`` keeps working), keeps its attributes, and pickles as itself."""

from __future__ import annotations

import pickle

import sqlalchemy as sa
from dbos_orchestrator.exceptions import DBOSConnectionError, DBOSOrchestratorError, DBOSSchemaMissingError, replacing


def test_a_replacing_error_is_both_and_keeps_the_driver_s_attributes() -> None:
    driver = sa.exc.OperationalError("SELECT 1", {"p": 1}, Exception("connection refused"))
    error = replacing(DBOSConnectionError, driver, "cannot connect to the DBOS system database at h:5432/db")
    assert isinstance(error, DBOSConnectionError) and isinstance(error, DBOSOrchestratorError)
    assert isinstance(error, sa.exc.OperationalError)
    assert str(error) == "cannot connect to the DBOS system database at h:5432/db"
    assert error.statement == "SELECT 1" and str(error.orig) == "connection refused"


def test_one_type_per_pair_and_it_pickles_as_the_core_s_error() -> None:
    first = replacing(DBOSSchemaMissingError, sa.exc.ProgrammingError("q", {}, Exception("x")), "no tables")
    second = replacing(DBOSSchemaMissingError, sa.exc.ProgrammingError("q", {}, Exception("y")), "still none")
    assert type(first) is type(second) and type(first).__name__ == "DBOSSchemaMissingError"
    loaded = pickle.loads(pickle.dumps(first))
    assert type(loaded) is DBOSSchemaMissingError and str(loaded) == "no tables"
