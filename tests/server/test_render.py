"""The small text helpers every rendering uses."""

from __future__ import annotations

from server.render import counted, plural


def test_counts_read_with_thousands_separators_and_the_right_noun() -> None:
    assert plural(1, "failure") == "1 failure"
    assert plural(106_355, "failure") == "106,355 failures"
    assert plural(2, "match", "matches") == "2 matches"


def test_a_total_reads_as_a_floor_where_counting_stopped() -> None:
    assert counted(25, exact=True) == "25"
    assert counted(1_000, exact=False) == "at least 1,000"
