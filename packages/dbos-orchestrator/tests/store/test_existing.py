"""Which ids of a bulk enqueue exist already (dbos_orchestrator/store/existing.py): the pure rules.

The probe and its fallback against Postgres are in tests/test_bulk.py (a real DBOS system database).
"""

from __future__ import annotations

import pytest
from dbos_orchestrator.store.existing import code_point_ordered, indexed_prefix, probe_bounds


@pytest.mark.parametrize(
    ("collation", "provider", "db_collate", "db_provider", "ordered"),
    [
        ("default", "d", "C", "c", True),
        ("default", "d", "POSIX", "c", True),
        ("default", "d", "C.UTF-8", "c", True),
        ("default", "d", "C.utf8", None, True),  # Postgres before 15: no datlocprovider, libc
        ("default", "d", "en_US.UTF-8", "c", False),  # glibc's linguistic order skips punctuation
        ("default", "d", "en_US.UTF-8", "i", False),  # ICU
        ("default", "d", "C", "i", False),  # an ICU database whose libc setting is C still sorts by ICU
        ("default", "d", "C", "b", True),  # Postgres 17's builtin provider
        ("C", "c", None, "i", True),  # the column's own collation wins over the database's
        ("ucs_basic", "c", "en_US.UTF-8", "c", True),
        ("und-x-icu", "i", "C", "c", False),
        ("en_US", "c", "C", "c", False),
    ],
)
def test_code_point_ordered(
    collation: str, provider: str, db_collate: str | None, db_provider: str | None, ordered: bool
) -> None:
    assert code_point_ordered(collation, provider, db_collate, db_provider) is ordered


def test_probe_bounds_hold_every_index_and_nothing_past_the_digits() -> None:
    low, high = probe_bounds("dag:run:task:-1:")
    for index in (0, 1, 9, 10, 99, 100_000, 10**17):
        assert low <= f"dag:run:task:-1:{index}" < high  # Python compares str by code point
    for outside in (
        "dag:run:task:-1:",
        "dag:run:task:-1::",
        "dag:run:task:-1:a",
        "dag:run:task:-1",
        "dag:run:task:-2:0",
    ):
        assert not low <= outside < high


@pytest.mark.parametrize(
    ("ids", "prefix"),
    [
        (["d:r:t:-1:0", "d:r:t:-1:1", "d:r:t:-1:2"], "d:r:t:-1:"),
        (["a-0", "a-1"], "a-"),
        (["a-0"], None),  # a batch of one: nothing to gain
        (["a-0", "a-2"], None),  # a gap
        (["a-1", "a-0"], None),  # not in item order
        (["a10", "a11"], None),  # the prefix would end in a digit: a1 + 0 or a + 10?
        (["a-0", "a-01"], None),  # not canonical
        ([], None),
    ],
)
def test_indexed_prefix(ids: list[str], prefix: str | None) -> None:
    assert indexed_prefix(ids) == prefix
