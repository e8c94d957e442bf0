"""Every read query the tools need is answered from an index on PostgreSQL too: EXPLAIN of the
same builders (store/sqlite/queries.py), run as the engine runs them, on a migrated, populated
and ANALYZEd schema shows no sequential scan of executions, events or tasks.

On tables this small (4,000 executions, 12,000 events) PostgreSQL rightly prefers a sequential
scan, so the check runs with `enable_seqscan = off`: the planner then still picks a Seq Scan
when no index can answer the query (the setting only makes it expensive), so any Seq Scan left
in a plan is a missing index."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from store.models import ExecutionFilter
from store.postgres.schema import migrate
from store.postgres.tx import pg_sql
from store.sqlite import analysis_queries as aq
from store.sqlite import queries as q
from store.sqlite.rows import EVENT_COLUMNS, EXECUTION_COLUMNS, TASK_SELECT
from store.timeutil import to_us

pytestmark = pytest.mark.postgres

EXECUTIONS = 4000
T0 = datetime(2025, 11, 1, tzinfo=UTC)
T0_US = to_us(T0)
MINUTE_US = 60_000_000
TABLES = {"executions", "events", "tasks", "failures"}


def span(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def trace(n: int) -> str:
    return f"11111111-0000-4000-8000-{n - n % 4:012d}"


def execution_row(n: int) -> list[Any]:
    """60 tasks, 6 types, 12 actors, 10% failed over 15 stack hashes, 4% running, retries, 5% backfilled."""
    attempt, started = n % 4 + 1, T0_US + n * MINUTE_US
    status = "failed" if n % 10 == 0 else "running" if n % 25 == 1 else "success"
    failed, running = status == "failed", status == "running"
    row = {
        "execution_id": f"task_exec_{n}", "span_id": span(n), "trace_id": trace(n),
        "parent_span_id": span(n - 1) if n % 50 == 7 else None, "task_id": f"task-{n % 60}",
        "task_slug": f"task-{n % 60}", "task_name": None, "task_type": f"type-{n % 6}", "trigger": "manual",
        "actor": f"actor-{n % 12}" if n % 7 else None, "worker_id": f"w{n % 3}" if n % 50 == 7 else None,
        "attempt": attempt, "retry_of": span(n - 1) if attempt > 1 else None,
        "idempotency_key": f"key-{n}" if n % 2 else None, "status": status, "started_us": started,
        "ended_us": None if running else started + 5_000_000, "duration_ms": None if running else 5000,
        "scheduled_us": None, "error_type": "KeyError" if failed else None,
        "error_message": f"missing {n}" if failed else None, "error_stack": None,
        "stack_hash": f"hash-{n % 15}" if failed else None, "result": None, "input_tokens": None,
        "output_tokens": None, "cost": None, "backfilled": int(n % 20 == 0), "scrubbed": 0,
        "session_id": f"task:task-{n % 60}:{n}", "created_us": started, "detail": "{}",
    }  # fmt: skip
    return [row[c] for c in EXECUTION_COLUMNS]


def event_rows(n: int) -> Iterator[list[Any]]:
    for k, kind in enumerate(("task_started", "acme.progress", "task_completed")):
        ts = T0_US + n * MINUTE_US + k * 1_000_000
        linked = n % 30 != 3
        yield [
            f"ev-{n}-{k}", kind, f"task-{n % 60}", trace(n) if linked else None, span(n) if linked else None,
            None, ts, "{}", None, ts,
        ]  # fmt: skip


def insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"


@pytest.fixture(scope="module")
def db(module_postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(module_postgres_url, autocommit=True) as conn:
        migrate(conn)
        with conn.cursor() as cur:
            cur.executemany(
                insert_sql("executions", EXECUTION_COLUMNS), [execution_row(n) for n in range(EXECUTIONS)]
            )
            events = [e for n in range(EXECUTIONS) for e in event_rows(n)]
            cur.executemany(insert_sql("events", EVENT_COLUMNS), events)
            tasks = "SELECT DISTINCT task_id, 'completed', 0 FROM executions"
            cur.execute(f"INSERT INTO tasks (task_id, state, updated_us) {tasks}")
        conn.execute("ANALYZE")
        conn.execute("SET enable_seqscan = off")
        yield conn


SINCE, UNTIL = T0 + timedelta(days=1), T0 + timedelta(days=2)
SINCE_US, UNTIL_US = to_us(SINCE), to_us(UNTIL)
CURSOR = q.Cursor(T0_US + 2000 * MINUTE_US, 2001, "")

LIST_FILTERS: dict[str, ExecutionFilter] = {
    "none": ExecutionFilter(),
    "task_id": ExecutionFilter(task_id="task-7"),
    "status": ExecutionFilter(status="failed"),
    "task_type": ExecutionFilter(task_type="type-2"),
    "actor": ExecutionFilter(actor="actor-3"),
    "since and until": ExecutionFilter(since=SINCE, until=UNTIL),
    "backfilled": ExecutionFilter(backfilled=True),
    "retrying": ExecutionFilter(retrying=True),
    "not retrying": ExecutionFilter(retrying=False),
    "task_id and status": ExecutionFilter(task_id="task-7", status="failed"),
    "status and window": ExecutionFilter(status="failed", since=SINCE, until=UNTIL),
}

QUERIES: dict[str, Callable[[], q.Query]] = {
    **{f"list_page {name}": (lambda f=f: q.list_page(f, 20, None)) for name, f in LIST_FILTERS.items()},
    **{
        f"list_page {name} after cursor": (lambda f=f: q.list_page(f, 20, CURSOR))
        for name, f in LIST_FILTERS.items()
    },
    **{f"count_capped {name}": (lambda f=f: q.count_capped(f)) for name, f in LIST_FILTERS.items()},
    "trace_executions": lambda: q.trace_executions(trace(400)),
    "trace_events": lambda: q.trace_events(trace(400)),
    "span_events": lambda: q.span_events(span(400)),
    "events_before": lambda: q.events_before(trace(400), T0_US + 402 * MINUTE_US, 5),
    "execution_by_span": lambda: q.execution_by_span(span(400)),
    "last_failed": lambda: q.last_failed(None, None, None, 10),
    "last_failed task_id and window": lambda: q.last_failed("task-10", SINCE_US, UNTIL_US, 10),
    "last_failed_unique": lambda: q.last_failed_unique(None, 10),
    "window_groups": lambda: q.window_groups(None, SINCE_US, UNTIL_US),
    "failures_started_at": lambda: q.failures_started_at(
        None, [T0_US + 400 * MINUTE_US, T0_US + 800 * MINUTE_US]
    ),
    "error_patterns": lambda: q.error_patterns(None, None, None, 20),
    "window_groups task_id": lambda: q.window_groups("task-10", SINCE_US, UNTIL_US),
    "failures_started_at task_id": lambda: q.failures_started_at(
        "task-10", [T0_US + 400 * MINUTE_US, T0_US + 800 * MINUTE_US]
    ),
    "executions_by_seq": lambda: q.executions_by_seq([400, 800, 1200]),
    "recent_events": lambda: q.recent_events(
        [(trace(400), T0_US + 402 * MINUTE_US), (trace(800), T0_US + 803 * MINUTE_US)], 5
    ),
    "error_patterns window": lambda: q.error_patterns(None, SINCE_US, UNTIL_US, 20),
    "last_failed_unique task_id": lambda: q.last_failed_unique("task-10", 10),
    "error_patterns task_id": lambda: q.error_patterns("task-10", None, None, 20),
    "error_patterns task_id and window": lambda: q.error_patterns("task-10", SINCE_US, UNTIL_US, 20),
    "task_executions": lambda: q.task_executions("task-7", 500),
    "task_events": lambda: q.task_events("task-7", 500),
    "task_counts": lambda: q.task_counts("task-7"),
    # tasks_failure_patterns' groups with the window's totals in the same pass.
    "failure groups": lambda: aq.failure_groups(aq.failure_window(None, None, None), 10, 0),
    "failure groups window": lambda: aq.failure_groups(aq.failure_window(None, SINCE_US, UNTIL_US), 10, 0),
    "failure groups task_id": lambda: aq.failure_groups(aq.failure_window("task-10", None, None), 10, 0),
    "failure groups narrow window": lambda: aq.failure_groups(
        aq.failure_window(None, SINCE_US, UNTIL_US), 10, 0, by_range=True
    ),
    "failures at most": lambda: aq.failures_at_most(aq.failure_window(None, SINCE_US, UNTIL_US), 10_000),
    "group tasks": lambda: aq.group_members(aq.failure_window(None, None, None), "abc", "task_id"),
    "group actors": lambda: aq.group_members(aq.failure_window(None, None, None), "abc", "actor"),
    "group actors window": lambda: aq.group_members(
        aq.failure_window(None, SINCE_US, UNTIL_US), "abc", "actor"
    ),
    "group actors task_id": lambda: aq.group_members(
        aq.failure_window("task-10", None, None), "abc", "actor"
    ),
    # tasks_stats percentiles over every top-level run, and a wide window of them.
    "stats p99 top-level": lambda: aq.duration_at_rank(aq.top_level_walk(None, None), 3800, 3840),
    "stats p50 top-level window": lambda: aq.duration_at_rank(
        aq.top_level_walk(SINCE_US, UNTIL_US), 700, 1400
    ),
    "task_status": lambda: (f"SELECT {TASK_SELECT} FROM tasks WHERE task_id = ?", ["task-7"]),
    # The write jobs' own lookups (store/sqlite/jobs.py, events.py), run under the write lock.
    "job by idempotency_key": lambda: ("SELECT span_id FROM executions WHERE idempotency_key = ?", ["key-7"]),
    "job retried by": lambda: ("SELECT span_id FROM executions WHERE retry_of = ?", [span(7)]),
    "job event by id": lambda: ("SELECT event_id FROM events WHERE event_id = ?", ["ev-7-1"]),
    "job running worker": lambda: (
        "SELECT span_id FROM executions WHERE task_id = ? AND worker_id = ? AND status = 'running' "
        "ORDER BY started_us DESC LIMIT 1",
        ["task-7", "w1"],
    ),
    "job latest top-level": lambda: (
        "SELECT span_id FROM executions WHERE task_id = ? AND parent_span_id IS NULL "
        "ORDER BY started_us DESC, seq DESC LIMIT 1",
        ["task-7"],
    ),
}


def plan(conn: psycopg.Connection[Any], sql: str, params: list[Any]) -> dict[str, Any]:
    row = conn.execute("EXPLAIN (FORMAT JSON) " + pg_sql(sql), params).fetchone()
    assert row is not None
    return row[0][0]["Plan"]  # type: ignore[no-any-return]


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)


def seq_scans(conn: psycopg.Connection[Any], sql: str, params: list[Any]) -> list[str]:
    """Sequential scans of the store's tables in the plan (aliases resolved by relation name)."""
    return [
        f"Seq Scan on {n['Relation Name']}"
        for n in nodes(plan(conn, sql, params))
        if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in TABLES
    ]


@pytest.mark.parametrize("name", list(QUERIES))
def test_each_read_query_is_answered_from_an_index_on_postgres(
    db: psycopg.Connection[Any], name: str
) -> None:
    sql, params = QUERIES[name]()
    scans = {n["Node Type"] for n in nodes(plan(db, sql, params)) if n.get("Relation Name") in TABLES}
    assert seq_scans(db, sql, params) == [], plan(db, sql, params)
    assert scans and scans <= {"Index Scan", "Index Only Scan", "Bitmap Heap Scan"}, scans


@pytest.mark.parametrize("name", [n for n in QUERIES if n.startswith("list_page")])
def test_each_list_page_can_read_rows_in_index_order_without_sorting_on_postgres(
    db: psycopg.Connection[Any], name: str
) -> None:
    """Newest first straight from an index, so a page costs about `limit` rows however many match.
    (For a handful of matches PostgreSQL may rather sort them, which is cheaper; with
    `enable_sort = off` it still sorts only when no index yields the order.)"""
    sql, params = QUERIES[name]()
    with db.transaction():
        db.execute("SET LOCAL enable_sort = off")
        found = plan(db, sql, params)
    assert "Sort" not in {n["Node Type"] for n in nodes(found)}, found


@pytest.mark.parametrize("name", [n for n in QUERIES if n.startswith("stats p")])
def test_a_top_level_percentile_walks_its_partial_index_without_sorting_on_postgres(
    db: psycopg.Connection[Any], name: str
) -> None:
    """(On this small table PostgreSQL may rather sort a window's rows; with `enable_sort = off`
    it still sorts only when no index yields the order.)"""
    sql, params = QUERIES[name]()
    with db.transaction():
        db.execute("SET LOCAL enable_sort = off")
        found = plan(db, sql, params)
    assert "ix_exec_top_duration" in {n.get("Index Name") for n in nodes(found)}, found
    assert "Sort" not in {n["Node Type"] for n in nodes(found)}, found


def test_the_plan_check_does_notice_a_sequential_scan(db: psycopg.Connection[Any]) -> None:
    assert seq_scans(db, "SELECT * FROM executions WHERE result = ?", ["x"]) == ["Seq Scan on executions"]
    assert seq_scans(db, "SELECT * FROM events AS v WHERE v.data = ?", ["x"]) == ["Seq Scan on events"]
