"""bench/results.md is rewritten by ``python -m bench`` (bench/__main__.py): a run replaces its own
figure's rows and keeps everything else, the notes under the table included (README, "Performance")."""

from __future__ import annotations

from bench.__main__ import merge_results

OLD = """# dbos-airflow benchmarks

intro
Total run time: 124 s.

| Figure | Plain dbos.DBOSClient | dbos-airflow | Ratio | N | Goal | Met | Date |
|---|---|---|---|---|---|---|---|
| P1 single enqueue | 1 ms | 1 ms | 1.0 | 21 rounds | <= 1.05 | met | d1 |
| P9 wake-up | a | b | 0.5 | 1000; all 1,000 end at once | <= 0.5 s | MISSED | d1 |
| P9 wake-up | a | b | 0.1 | 1000; completions spread over 20 s | <= 0.5 s | met | d1 |
| P10 wall time | 325 s | 7 s | 45x | 1,000 workflows | >= 50x | MISSED | d1 |

P9 notes: written by hand, must survive.
"""


def row(figure: str, n: str, date: str = "d2") -> str:
    return f"| {figure} | x | y | 1 | {n} | g | met | {date} |"


def test_a_run_replaces_its_own_rows_and_keeps_the_rest() -> None:
    new = merge_results(
        OLD, {"p10": [row("P10 wall time", "1,000 workflows"), row("P10 rows", "1,000 workflows")]}, None
    )
    lines = new.splitlines()
    assert "P9 notes: written by hand, must survive." in lines
    assert "Total run time: 124 s." in lines
    p10 = [line for line in lines if line.startswith("| P10")]
    assert p10 == [row("P10 wall time", "1,000 workflows"), row("P10 rows", "1,000 workflows")]
    assert sum(line.startswith("| P1 ") for line in lines) == 1 and sum(line.startswith("| P9 ") for line in lines) == 2


def test_a_variant_replaces_only_its_own_variant_in_place() -> None:
    new = merge_results(OLD, {"p9": [row("P9 wake-up", "1000; completions spread over 20 s")]}, 300)
    table = [line for line in new.splitlines() if line.startswith("| P")]
    assert table[1].endswith("| d1 |") and "all 1,000 end at once" in table[1]  # the other P9 run stays
    assert table[2] == row("P9 wake-up", "1000; completions spread over 20 s")
    assert "Total run time: 300 s." in new.splitlines()


def test_a_new_figure_is_added_and_an_empty_file_gets_a_table() -> None:
    assert merge_results(OLD, {"p12": [row("P12 new", "5")]}, None).splitlines()[-3] == row("P12 new", "5")
    fresh = merge_results("", {"p1": [row("P1 single enqueue", "21 rounds")]}, 10).splitlines()
    assert fresh[-1] == row("P1 single enqueue", "21 rounds") and fresh[-3].startswith("| Figure |")
