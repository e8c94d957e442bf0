"""`run_tallies`: every execution ever recorded, counted per (child, task_id, task_type, actor,
status, attempt), with its measured durations and token sums, kept by triggers on executions in
the transaction that changes them (migration 0012).

tasks_stats over all time reads these rows instead of grouping every execution of its scope:
the busiest task's 75,000 runs took 86 ms to group and every task's 625,000 runs a second, where
the tallies hold a few rows per task. A time window still counts its executions (its edges fall
anywhere, and a window is seldom wide). The percentiles come from the duration indexes either way.

`child` is 1 for a worker's run or child work (worker_id or parent_span_id set), 0 for a task's own
run (store.sqlite.analysis_queries.TOP_LEVEL_RUN). task_type and actor may be NULL, a group of its
own in the statistics, but a key column holding NULL never conflicts in an upsert, so they are kept
as `task_type_key` and `actor_key`: '' for NULL, '=' followed by the value otherwise (`decoded`).

Triggers rather than the write jobs keep it, as for store.sqlite.failure_stacks: inserts, finishes,
imports, prune, the benchmark's raw deletes and the bulk loaders' rebuild all go through them."""

from __future__ import annotations

from typing import Literal

from store.models import USAGE_MAX
from store.sqlite import row_triggers

Dialect = Literal["sqlite", "postgres"]

KEY = "child, task_id, task_type_key, actor_key, status, attempt"

_TABLE = """
CREATE TABLE run_tallies (
    child           {int} NOT NULL CHECK (child IN (0, 1)),
    task_id         TEXT NOT NULL,
    task_type_key   TEXT NOT NULL,
    actor_key       TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempt         {int} NOT NULL,
    runs            {int} NOT NULL,
    measured        {int} NOT NULL,
    input_tokens    {int} NOT NULL,
    output_tokens   {int} NOT NULL,
    cost            {real} NOT NULL,
    PRIMARY KEY ({key})
)"""


def encoded(column: str) -> str:
    """A nullable column as a key: '' for NULL, '=' || value otherwise."""
    return f"CASE WHEN {column} IS NULL THEN '' ELSE '=' || {column} END"


def decoded(key_column: str) -> str:
    """The value `encoded` kept: NULL for '', the value after the '=' otherwise."""
    return f"CASE WHEN {key_column} = '' THEN NULL ELSE substr({key_column}, 2) END"


def clamped(column: str) -> str:
    """A run's tokens or cost as statistics count them: at most USAGE_MAX, which writes may not
    pass, so a record stored before that cap neither overflows a sum nor stops the migration."""
    return f"CASE WHEN {column} > {USAGE_MAX} THEN {USAGE_MAX} ELSE {column} END"


def _key_of(r: str) -> list[str]:
    """The key columns' values for row `r` (NEW, OLD, or a table alias), in KEY's order."""
    child = f"CASE WHEN {r}.worker_id IS NULL AND {r}.parent_span_id IS NULL THEN 0 ELSE 1 END"
    return [
        child,
        f"{r}.task_id",
        encoded(f"{r}.task_type"),
        encoded(f"{r}.actor"),
        f"{r}.status",
        f"{r}.attempt",
    ]


def _amounts_of(r: str) -> list[str]:
    """What row `r` adds to its tally: one run, its measured duration, its tokens and cost."""
    return [
        "1",
        f"CASE WHEN {r}.duration_ms IS NULL THEN 0 ELSE 1 END",
        f"COALESCE({clamped(f'{r}.input_tokens')}, 0)",
        f"COALESCE({clamped(f'{r}.output_tokens')}, 0)",
        f"COALESCE({clamped(f'{r}.cost')}, 0)",
    ]


_AMOUNTS = ("runs", "measured", "input_tokens", "output_tokens", "cost")
_COLUMNS = f"{KEY}, {', '.join(_AMOUNTS)}"


def _add(r: str) -> list[str]:
    """Put `r` into its tally (made when it is the first run of its key)."""
    values = ", ".join([*_key_of(r), *_amounts_of(r)])
    summed = ", ".join(f"{a} = run_tallies.{a} + excluded.{a}" for a in _AMOUNTS)
    return [
        f"INSERT INTO run_tallies ({_COLUMNS}) VALUES ({values}) ON CONFLICT ({KEY}) DO UPDATE SET {summed}"
    ]


def _remove(r: str) -> list[str]:
    """Take `r` out of its tally, and the tally out when no run is left in it."""
    group = " AND ".join(
        f"{column} = {value}" for column, value in zip(KEY.split(", "), _key_of(r), strict=True)
    )
    less = ", ".join(f"{a} = {a} - {amount}" for a, amount in zip(_AMOUNTS, _amounts_of(r), strict=True))
    return [
        f"UPDATE run_tallies SET {less} WHERE {group}",
        f"DELETE FROM run_tallies WHERE {group} AND runs <= 0",
    ]


_WATCHED = (
    "task_id", "task_type", "actor", "worker_id", "parent_span_id", "status", "attempt",
    "duration_ms", "input_tokens", "output_tokens", "cost",
)  # fmt: skip


def sqlite_triggers() -> tuple[str, ...]:
    return row_triggers.sqlite_triggers("run_tallies", "executions", _add, _remove, _WATCHED)


def postgres_triggers() -> tuple[str, ...]:
    return row_triggers.postgres_triggers("run_tallies", "executions", _add, _remove, _WATCHED)


_BACKFILL = (
    f"INSERT INTO run_tallies ({_COLUMNS}) SELECT {', '.join(_key_of('x'))}, COUNT(*), COUNT(x.duration_ms), "
    f"COALESCE(SUM({clamped('x.input_tokens')}), 0), COALESCE(SUM({clamped('x.output_tokens')}), 0), "
    f"COALESCE(SUM({clamped('x.cost')}), 0) FROM executions AS x GROUP BY 1, 2, 3, 4, 5, 6"
)


def statements(dialect: Dialect) -> tuple[str, ...]:
    """Migration 0012 in `dialect`: the table, the backfill, then the triggers, in the migration's
    one transaction, so no write falls between the backfill and the triggers."""
    sqlite = dialect == "sqlite"
    table = _TABLE.format(
        int="INTEGER" if sqlite else "BIGINT", real="REAL" if sqlite else "DOUBLE PRECISION", key=KEY
    )
    return (table, _BACKFILL, *(sqlite_triggers() if sqlite else postgres_triggers()))


REBUILD = ("DELETE FROM run_tallies", _BACKFILL)
"""Recount from the executions (store.sqlite.derived.rebuild runs it for bulk loaders)."""
