"""The debugging reads on the SQLite file itself: the derived tables (failures, side_effects) agree
whether the write path or the migration's backfill filled them, they go when their execution is
pruned, and every debugging query is answered from an index. The plans are checked without
ANALYZE, as a real database runs (the store never gathers statistics)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from store import Store
from store.dbapi import run_plan
from store.models import ErrorInput, IOEffects, RecordRequest
from store.sqlite import analysis_queries as aq
from store.sqlite import derived
from store.sqlite.analysis_reads import _failure_patterns
from store.sqlite.rows import EXECUTION_COLUMNS
from store.sqlite.schema import migrate
from store.timeutil import from_us, to_us

T0 = datetime(2025, 11, 1, tzinfo=UTC)
DERIVED = (
    "SELECT * FROM failures ORDER BY exec_seq",
    "SELECT * FROM side_effects ORDER BY exec_seq, kind, value",
)


def tables(path: Path) -> list[list[Any]]:
    with closing(sqlite3.connect(path)) as conn:
        return [conn.execute(sql).fetchall() for sql in DERIVED]


async def fill(path: Path) -> None:
    async with await Store.open(str(path)) as store:
        for n in range(12):
            error = (
                ErrorInput(type="KeyError", message=f"user {n % 5} missing", stack=None) if n % 3 else None
            )
            io = IOEffects(files_written=[f"out/{n % 2}/r{n}.json"], tool_calls=["grep"] * (n % 2))
            start = T0 + timedelta(minutes=n)
            req = RecordRequest(
                task_id=f"t{n % 4}",
                status="failed" if error else "success",
                started_at=start,
                ended_at=start + timedelta(seconds=n),
                error=error,
                io=io,
                actor=f"a{n % 3}",
            )
            done = (await store.record(req)).execution
            if error and n % 2:
                retry = RecordRequest(
                    task_id=done.task_id,
                    status="success",
                    started_at=start + timedelta(seconds=30),
                    retry_of=done.span_id,
                )
                await store.record(retry)


async def test_the_backfill_writes_what_the_write_path_wrote(db_path: Path) -> None:
    await fill(db_path)
    written = tables(db_path)
    assert written[0] and written[1] and any(row[-1] is not None for row in written[0])  # some fixed
    with closing(sqlite3.connect(db_path, isolation_level=None)) as conn:
        conn.execute("DROP TABLE failures")
        conn.execute("DROP TABLE side_effects")
        conn.execute("DROP INDEX ix_exec_task_duration")
        conn.execute("DELETE FROM schema_migrations WHERE name = '0006_failures_side_effects_stats'")
    await (await Store.open(str(db_path))).close()  # migrates again, backfilling
    assert tables(db_path) == written


async def test_rebuild_recomputes_the_same_rows(db_path: Path) -> None:
    await fill(db_path)
    written = tables(db_path)
    with closing(sqlite3.connect(db_path, isolation_level=None)) as conn:
        derived.rebuild(conn)
    assert tables(db_path) == written


async def test_pruning_an_execution_prunes_its_derived_rows(db_path: Path) -> None:
    await fill(db_path)
    with closing(sqlite3.connect(db_path, isolation_level=None)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")  # as the store's writer connection has it
        conn.execute("DELETE FROM executions WHERE status = 'failed'")
        assert conn.execute("SELECT COUNT(*) FROM failures").fetchone() == (0,)
        orphans = "SELECT COUNT(*) FROM side_effects WHERE exec_seq NOT IN (SELECT seq FROM executions)"
        assert conn.execute(orphans).fetchone() == (0,)


# ---- query plans ---------------------------------------------------------------------------

EXECUTIONS = 3000
T0_US = to_us(T0)
MINUTE_US = 60_000_000


def execution_row(n: int) -> list[Any]:
    failed, attempt = n % 10 == 0, n % 3 + 1
    started = T0_US + n * MINUTE_US
    detail = {
        "io": {
            "files_written": [f"reports/{n % 50}.json"],
            "tool_calls": ["grep"],
            "artifact_ids": [],
            "script_runs": [],
        }
    }
    row = {
        "execution_id": f"x{n}",
        "span_id": f"span-{n}",
        "trace_id": f"trace-{n - n % 3}",
        "parent_span_id": None,
        "task_id": f"task-{n % 30}",
        "task_slug": f"task-{n % 30}",
        "task_name": None,
        "task_type": f"type-{n % 5}",
        "trigger": "manual",
        "actor": f"actor-{n % 7}",
        "worker_id": f"w{n}" if n % 11 == 0 else None,
        "attempt": attempt,
        "retry_of": f"span-{n - 1}" if attempt > 1 else None,
        "idempotency_key": None,
        "status": "failed" if failed else "success",
        "started_us": started,
        "ended_us": started + n % 97 * 1000,
        "duration_ms": n % 97,
        "scheduled_us": None,
        "error_type": "KeyError" if failed else None,
        "error_message": f"missing {n}" if failed else None,
        "error_stack": None,
        "stack_hash": f"h{n % 9}" if failed else None,
        "result": None,
        "input_tokens": n,
        "output_tokens": 1,
        "cost": 0.01,
        "backfilled": 0,
        "scrubbed": 0,
        "session_id": f"s{n}",
        "created_us": started,
        "detail": json.dumps(detail),
    }
    return [row[c] for c in EXECUTION_COLUMNS]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    path = tmp_path_factory.mktemp("analysis_plans") / "plans.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        migrate(conn)
        conn.execute("BEGIN")
        marks = ", ".join("?" * len(EXECUTION_COLUMNS))
        conn.executemany(
            f"INSERT INTO executions ({', '.join(EXECUTION_COLUMNS)}) VALUES ({marks})",
            [execution_row(n) for n in range(EXECUTIONS)],
        )
        derived.rebuild(conn)
        conn.execute("COMMIT")
        yield conn


WINDOW = (T0_US + 100 * MINUTE_US, T0_US + 900 * MINUTE_US)
ONE_TASK = aq.stats_filter("task-7", None, None, None, False)
ONE_TASK_WINDOW = aq.stats_filter("task-7", None, *WINDOW, False)
TOP_LEVEL = aq.top_level_walk(None, None)
TOP_LEVEL_WINDOW = aq.top_level_walk(*WINDOW)
FAILURES = aq.failure_window(None, None, None)
FAILURES_WINDOW = aq.failure_window(None, *WINDOW)
FAILURES_TASK = aq.failure_window("task-10", None, None)
FILE = aq.effects_filter("file", "reports/7.json", None, None)

QUERIES: dict[str, tuple[aq.Query, str]] = {
    # name: (query, the index its plan must use)
    "stats counts, one task": (aq.stats_counts(ONE_TASK, None), "ix_exec_task_duration"),
    "stats counts, one task, window": (aq.stats_counts(ONE_TASK_WINDOW, None), "ix_exec_task"),
    "stats counts, every task": (
        aq.stats_counts(aq.stats_filter(None, None, None, None, False), "task_id"),
        "ix_exec_task_duration",
    ),
    "stats counts, by task_type": (
        aq.stats_counts(aq.stats_filter(None, None, None, None, False), "task_type"),
        "ix_exec_task_duration",
    ),
    "p99, one task": (aq.duration_at_rank(ONE_TASK, 90, 100), "ix_exec_task_duration"),
    "p50, one task": (aq.duration_at_rank(ONE_TASK, 40, 100), "ix_exec_task_duration"),
    "p99, one task, window": (aq.duration_at_rank(ONE_TASK_WINDOW, 20, 30), "ix_exec_task_duration"),
    "p50, every top-level run": (aq.duration_at_rank(TOP_LEVEL, 400, 1000), "ix_exec_top_duration"),
    "p99, every top-level run": (aq.duration_at_rank(TOP_LEVEL, 990, 1000), "ix_exec_top_duration"),
    "p99, top-level window": (aq.duration_at_rank(TOP_LEVEL_WINDOW, 790, 800), "ix_exec_top_duration"),
    "failure groups": (aq.failure_groups(FAILURES, 10, 0), "ix_failures_"),
    "failure groups, window": (aq.failure_groups(FAILURES_WINDOW, 10, 0), "ix_failures_"),
    "failure groups, task": (aq.failure_groups(FAILURES_TASK, 10, 0), "ix_failures_task"),
    "failure groups, narrow window": (
        aq.failure_groups(FAILURES_WINDOW, 10, 0, by_range=True),
        "COVERING INDEX ix_failures_started (started_us>? AND started_us<?)",
    ),
    "failures at most, window": (
        aq.failures_at_most(FAILURES_WINDOW, 10_000),
        "COVERING INDEX ix_failures_started (started_us>? AND started_us<?)",
    ),
    "failure totals": (aq.failure_totals(FAILURES_WINDOW), "ix_failures_"),
    "group tasks": (aq.group_members(FAILURES, "abc", "task_id"), "ix_failures_fingerprint_task"),
    "group actors": (aq.group_members(FAILURES, "abc", "actor"), "ix_failures_fingerprint_actor"),
    "group tasks, window": (
        aq.group_members(FAILURES_WINDOW, "abc", "task_id"),
        "ix_failures_fingerprint (fingerprint=? AND started_us>? AND started_us<?)",
    ),
    "group actors, window": (
        aq.group_members(FAILURES_WINDOW, "abc", "actor"),
        "ix_failures_fingerprint (fingerprint=? AND started_us>? AND started_us<?)",
    ),
    "group tasks, task": (aq.group_members(FAILURES_TASK, "abc", "task_id"), "ix_failures_fingerprint_task"),
    "group actors, task": (
        aq.group_members(FAILURES_TASK, "abc", "actor"),
        "ix_failures_fingerprint_task (fingerprint=? AND task_id=?)",
    ),
    "group trend": (aq.group_trend(FAILURES_WINDOW, "abc", WINDOW[0], MINUTE_US), "ix_failures_fingerprint"),
    "group example": (aq.group_example(FAILURES, "abc"), "ix_failures_fingerprint"),
    "story runs": (aq.story_executions("task_id", "task-7", WINDOW[1], 100), "ix_exec_task"),
    "story events": (aq.story_events("trace_id", "trace-3", None, 100), "ix_events_trace"),
    "side effects page": (aq.effects_page(FILE, None, None, 20), "ix_side_effects_value"),
    "side effects page, task": (
        aq.effects_page(FILE, "task-7", (T0_US + 500 * MINUTE_US, 500), 20),
        "ix_side_effects_value",
    ),
    "side effects count": (aq.effects_count(FILE, None), "ix_side_effects_value"),
}


# The tables and the aliases the builders give them (a SCAN of a subquery's result is fine).
TABLE_SCANS = [
    ["SCAN", name] for name in ("executions", "events", "failures", "side_effects", "e", "s", "f", "r")
]


def plan(conn: sqlite3.Connection, query: aq.Query) -> str:
    return "\n".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query[0]}", query[1]))


@pytest.mark.parametrize("name", list(QUERIES))
def test_each_debugging_query_reads_an_index_not_a_table(db: sqlite3.Connection, name: str) -> None:
    query, index = QUERIES[name]
    steps = plan(db, query)
    table_scans = [s for s in steps.splitlines() if s.split(" ")[:2] in TABLE_SCANS and "INDEX" not in s]
    assert table_scans == [], steps
    assert index in steps, steps


@pytest.mark.parametrize(
    ("scope", "rank", "measured", "index"),
    [
        (ONE_TASK, 90, 100, "ix_exec_task_duration"),
        (ONE_TASK, 10, 100, "ix_exec_task_duration"),
        (TOP_LEVEL, 990, 1000, "ix_exec_top_duration"),
        (TOP_LEVEL, 400, 1000, "ix_exec_top_duration"),
        (TOP_LEVEL_WINDOW, 790, 800, "ix_exec_top_duration"),
    ],
)
def test_a_percentile_walks_the_index_in_order_without_sorting(
    db: sqlite3.Connection, scope: aq.Query, rank: int, measured: int, index: str
) -> None:
    steps = plan(db, aq.duration_at_rank(scope, rank, measured))
    assert f"COVERING INDEX {index}" in steps and "TEMP B-TREE" not in steps, steps


@pytest.mark.parametrize("column", ["task_id", "actor"])
def test_an_all_time_group_names_its_members_from_an_index_in_group_order(
    db: sqlite3.Connection, column: str
) -> None:
    steps = plan(db, aq.group_members(FAILURES, "abc", column))
    assert f"COVERING INDEX ix_failures_fingerprint_{column.split('_')[0]}" in steps, steps
    assert "TEMP B-TREE FOR GROUP BY" not in steps, steps


def test_one_tasks_group_looks_up_only_its_own_failures_to_name_the_actors(db: sqlite3.Connection) -> None:
    """Not ix_failures_fingerprint_actor, which orders the actors but lacks task_id: walking it
    looked up every failure of the group in every task (70 ms a call on the 1M benchmark)."""
    steps = plan(db, aq.group_members(FAILURES_TASK, "abc", "actor"))
    assert "ix_failures_fingerprint_actor" not in steps, steps
    assert "COVERING INDEX ix_failures_fingerprint_task (fingerprint=? AND task_id=?)" in steps, steps
    assert "USING INTEGER PRIMARY KEY (rowid=?)" in steps, steps


def test_a_side_effect_count_reads_the_index_alone_unless_it_filters_by_task(db: sqlite3.Connection) -> None:
    """Every side_effects row has its execution (foreign key, ON DELETE CASCADE): counting the
    matches needs no lookup in executions, which cost 10,001 random reads on the 1M benchmark."""
    steps = plan(db, aq.effects_count(FILE, None))
    assert steps.splitlines()[1:] == [
        "SEARCH s USING COVERING INDEX ix_side_effects_value (kind=? AND value=?)",
        "SCAN capped",
    ], steps
    steps = plan(db, aq.effects_count(FILE, "task-7"))  # task_id is the execution's: joined
    assert "SEARCH e USING INTEGER PRIMARY KEY (rowid=?)" in steps, steps


def test_a_window_grouped_by_range_has_the_same_groups_as_one_walked_in_group_order(
    db: sqlite3.Connection,
) -> None:
    walked = db.execute(*aq.failure_groups(FAILURES_WINDOW, 50, 0)).fetchall()
    ranged = db.execute(*aq.failure_groups(FAILURES_WINDOW, 50, 0, by_range=True)).fetchall()
    assert len(walked) > 3 and ranged == walked
    steps = plan(db, aq.failure_groups(FAILURES, 10, 0))
    assert "SCAN failures USING COVERING INDEX ix_failures_fingerprint" in steps, steps
    assert "TEMP B-TREE FOR GROUP BY" not in steps, steps  # all of time: no sort of 100,000 failures


def statements_of_patterns(
    db: sqlite3.Connection, task_id: str | None, window: tuple[int, int] | None
) -> list[str]:
    """The statements tasks_failure_patterns' read plan runs on the file, in order."""
    since, until = (from_us(window[0]), from_us(window[1])) if window else (None, None)
    ran: list[str] = []

    def fetch(sql: str, params: Any) -> list[Any]:
        ran.append(sql)
        return db.execute(sql, params).fetchall()

    run_plan(_failure_patterns(task_id, since, until, 10, 0, T0_US + 10_000 * MINUTE_US), fetch)
    return ran


@pytest.mark.parametrize(
    ("task_id", "window", "cap", "by_range"),
    [
        (None, WINDOW, aq.NARROW_WINDOW_FAILURES, True),  # a window of few failures: its range
        (None, WINDOW, 5, False),  # as many as the cap or more: walked in group order
        (None, None, aq.NARROW_WINDOW_FAILURES, None),  # all of time: ranked from failure_groups
        ("task-10", WINDOW, aq.NARROW_WINDOW_FAILURES, False),  # one task: ix_failures_task's range
    ],
)
def test_failure_patterns_group_a_narrow_window_from_its_time_range(
    db: sqlite3.Connection,
    monkeypatch: pytest.MonkeyPatch,
    task_id: str | None,
    window: tuple[int, int] | None,
    cap: int,
    by_range: bool | None,
) -> None:
    monkeypatch.setattr(aq, "NARROW_WINDOW_FAILURES", cap)
    ran = statements_of_patterns(db, task_id, window)
    counted = [sql for sql in ran if "AS capped" in sql]
    groups = [sql for sql in ran if "GROUP BY 1 ORDER BY COUNT(*) DESC" in sql]
    ranked = [sql for sql in ran if "FROM failure_groups ORDER BY n DESC" in sql]
    assert len(counted) == (1 if task_id is None and window else 0)
    if by_range is None:  # all of time: no failure is grouped per call
        assert (len(groups), len(ranked)) == (0, 1)
        return
    assert (len(groups), len(ranked)) == (1, 0)
    assert ("fingerprint || ''" in groups[0]) is by_range


def test_a_high_percentile_walks_from_the_top() -> None:
    """p99 of 1,000 is 9 steps from the slow end, not 990 from the fast one."""
    sql, params = aq.duration_at_rank(TOP_LEVEL, 990, 1000)
    assert "ORDER BY duration_ms DESC" in sql and params[-1] == 9
    sql, params = aq.duration_at_rank(TOP_LEVEL, 400, 1000)
    assert "ORDER BY duration_ms LIMIT" in sql and params[-1] == 400
