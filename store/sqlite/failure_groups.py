"""`failure_groups`: every failure ever recorded (store.sqlite.derived's `failures` rows), counted
per fingerprint with its first and last start and how many a later attempt fixed, kept by
triggers on `failures` in the transaction that changes them (migration 0013).

tasks_failure_patterns over all time ranks these rows instead of grouping every failure: the
benchmark's 106,355 failures took 40 ms to group per call, where the groups are a few hundred rows.
A time window or one task still groups its own failures (their first and last differ per window).

Triggers on `failures` see every path that changes it: a failure indexed at write time, a retry
that fixes earlier attempts (fixed_us), a delete of its execution (the foreign key cascades), the
backfills and the bulk loaders' rebuild."""

from __future__ import annotations

from functools import partial
from typing import Literal

from store.sqlite import row_triggers

Dialect = Literal["sqlite", "postgres"]

_TABLE = """
CREATE TABLE failure_groups (
    fingerprint  TEXT PRIMARY KEY,
    n            {int} NOT NULL,
    first_us     {int} NOT NULL,
    last_us      {int} NOT NULL,
    fixed        {int} NOT NULL
)"""

_FIXED = "CASE WHEN {r}.fixed_us IS NULL THEN 0 ELSE 1 END"

_ADD = (
    "INSERT INTO failure_groups (fingerprint, n, first_us, last_us, fixed) VALUES "
    "({r}.fingerprint, 1, {r}.started_us, {r}.started_us, " + _FIXED + ") "
    "ON CONFLICT (fingerprint) DO UPDATE SET n = failure_groups.n + 1, "
    "first_us = {least}(failure_groups.first_us, excluded.first_us), "
    "last_us = {greatest}(failure_groups.last_us, excluded.last_us), "
    "fixed = failure_groups.fixed + excluded.fixed"
)

_GROUP = "fingerprint = {r}.fingerprint"
_REMOVE = (
    f"UPDATE failure_groups SET n = n - 1, fixed = fixed - {_FIXED} WHERE {_GROUP}",
    f"DELETE FROM failure_groups WHERE {_GROUP} AND n <= 0",
    # The first or last went: read it again from ix_failures_fingerprint (a seek). COALESCE keeps
    # the old value when none is left; the count then deletes the group (on PostgreSQL at the row
    # trigger of its last row, which runs after the whole statement).
    f"UPDATE failure_groups SET first_us = COALESCE((SELECT MIN(x.started_us) FROM failures AS x "
    f"WHERE x.fingerprint = {{r}}.fingerprint), first_us) WHERE {_GROUP} AND first_us = {{r}}.started_us",
    f"UPDATE failure_groups SET last_us = COALESCE((SELECT MAX(x.started_us) FROM failures AS x "
    f"WHERE x.fingerprint = {{r}}.fingerprint), last_us) WHERE {_GROUP} AND last_us = {{r}}.started_us",
)

_FUNCTIONS: dict[Dialect, dict[str, str]] = {
    "sqlite": {"least": "MIN", "greatest": "MAX"},
    "postgres": {"least": "LEAST", "greatest": "GREATEST"},
}
_WATCHED = ("fingerprint", "started_us", "fixed_us")


def _added(dialect: Dialect, r: str) -> list[str]:
    return [_ADD.format(r=r, **_FUNCTIONS[dialect])]


def _removed(r: str) -> list[str]:
    return [statement.format(r=r) for statement in _REMOVE]


def sqlite_triggers() -> tuple[str, ...]:
    added = partial(_added, "sqlite")
    return row_triggers.sqlite_triggers("failure_groups", "failures", added, _removed, _WATCHED)


def postgres_triggers() -> tuple[str, ...]:
    added = partial(_added, "postgres")
    return row_triggers.postgres_triggers("failure_groups", "failures", added, _removed, _WATCHED)


BACKFILL = (
    "INSERT INTO failure_groups (fingerprint, n, first_us, last_us, fixed) SELECT fingerprint, COUNT(*), "
    "MIN(started_us), MAX(started_us), COUNT(fixed_us) FROM failures GROUP BY fingerprint"
)


def statements(dialect: Dialect) -> tuple[str, ...]:
    """Migration 0013 in `dialect`: the table, the backfill, then the triggers, in one transaction."""
    table = _TABLE.format(int="INTEGER" if dialect == "sqlite" else "BIGINT")
    return (table, BACKFILL, *(sqlite_triggers() if dialect == "sqlite" else postgres_triggers()))


REBUILD = ("DELETE FROM failure_groups", BACKFILL)
"""Recount from the failures (store.sqlite.derived.rebuild runs it after refilling them)."""
