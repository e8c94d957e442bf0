"""Read queries as (sql, params) built apart from running them, so they can be checked
without a database (and with EXPLAIN QUERY PLAN). Values always travel as parameters."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from store.errors import InvalidInput
from store.ids import cursor_int
from store.models import ExecutionFilter
from store.sqlite.rows import EVENT_SELECT, EXECUTION_SELECT
from store.timeutil import to_us

COUNT_CAP = 1_000
"""Counting stops here: past it `total` is a lower bound and says so (total_exact=false). Counting
costs about 50 ns a match, so 10,000 cost 0.5 ms: more than the page itself. Nobody pages through
a thousand executions; tasks_stats counts a window exactly."""

Query = tuple[str, list[Any]]

_EQUALITY_FILTERS = ("task_id", "status", "task_type", "actor")


def filter_clause(f: ExecutionFilter) -> Query:
    """WHERE conditions for an execution filter (always at least `1=1`)."""
    parts: list[str] = []
    params: list[Any] = []
    for name in _EQUALITY_FILTERS:
        value = getattr(f, name)
        if value is not None:
            parts.append(f"{name} = ?")
            params.append(value)
    if f.since is not None:
        parts.append("started_us >= ?")
        params.append(to_us(f.since))
    if f.until is not None:
        parts.append("started_us < ?")
        params.append(to_us(f.until))
    if f.backfilled is not None:
        parts.append("backfilled = ?")
        params.append(int(f.backfilled))
    if f.retrying is True:
        parts.append("status = 'running' AND attempt > 1")
    elif f.retrying is False:
        parts.append("NOT (status = 'running' AND attempt > 1)")
    return (" AND ".join(parts) or "1=1"), params


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended: the last row's (started_us, seq)."""

    started_us: int
    seq: int
    filter_digest: str


def filter_digest(f: ExecutionFilter) -> str:
    return hashlib.sha256(f.model_dump_json().encode()).hexdigest()[:12]


def encode_cursor(cursor: Cursor) -> str:
    raw = json.dumps([cursor.started_us, cursor.seq, cursor.filter_digest]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, f: ExecutionFilter) -> Cursor:
    """The cursor in `token`; InvalidInput when it is garbled or was made for other filters."""
    try:
        padded = token + "=" * (-len(token) % 4)
        started_us, seq, digest = json.loads(base64.urlsafe_b64decode(padded.encode()))
        cursor = Cursor(cursor_int(started_us), cursor_int(seq), str(digest))
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidInput(
            "cursor",
            "is not a cursor this server issued",
            hint="Pass next_cursor from the previous page unchanged.",
        ) from exc
    if cursor.filter_digest != filter_digest(f):
        raise InvalidInput(
            "cursor",
            "was issued for different filters",
            hint="Repeat the same filters as the call that returned it, or omit cursor to start over.",
        )
    return cursor


def list_page(f: ExecutionFilter, limit: int, cursor: Cursor | None) -> Query:
    """One page, newest first, plus one extra row to learn whether there is more."""
    where, params = filter_clause(f)
    if cursor is not None:
        # The row-value form lets the planner seek straight into the index; the OR form
        # made it merge two ranges and sort everything since `since` on every later page.
        where += " AND (started_us, seq) < (?, ?)"
        params += [cursor.started_us, cursor.seq]
    sql = (
        f"SELECT seq, {EXECUTION_SELECT} FROM executions WHERE {where} ORDER BY started_us DESC, "
        "seq DESC LIMIT ?"
    )
    return sql, [*params, limit + 1]


def count_capped(f: ExecutionFilter) -> Query:
    where, params = filter_clause(f)
    # PostgreSQL (before 16) wants every subquery in FROM named; SQLite does not mind.
    sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM executions WHERE {where} LIMIT ?) AS capped"
    return sql, [*params, COUNT_CAP + 1]


def counted_page(f: ExecutionFilter, limit: int, cursor: Cursor | None) -> Query:
    """`list_page` with `count_capped` as its first column: one statement, so one snapshot and one
    round trip. The count is uncorrelated, so both engines run it once, not once a row. A page
    with no rows carries no count: the caller counts on its own then (see `count_capped`)."""
    page_sql, page_params = list_page(f, limit, cursor)
    count_sql, count_params = count_capped(f)
    sql = f"SELECT ({count_sql}) AS counted, {page_sql.removeprefix('SELECT ')}"
    return sql, [*count_params, *page_params]


def trace_executions(trace_id: str) -> Query:
    """The trace's executions, each after its seq."""
    sql = (
        f"SELECT seq, {EXECUTION_SELECT} FROM executions WHERE trace_id = ? ORDER BY attempt, started_us, seq"
    )
    return sql, [trace_id]


def trace_events(trace_id: str) -> Query:
    """The trace's events, each after its seq."""
    return f"SELECT seq, {EVENT_SELECT} FROM events WHERE trace_id = ? ORDER BY ts_us, seq", [trace_id]


def span_events(span_id: str) -> Query:
    return f"SELECT {EVENT_SELECT} FROM events WHERE span_id = ? ORDER BY ts_us, seq", [span_id]


def events_before(trace_id: str, until_us: int, limit: int) -> Query:
    sql = (
        f"SELECT {EVENT_SELECT} FROM events WHERE trace_id = ? AND ts_us <= ? ORDER BY ts_us "
        "DESC, seq DESC LIMIT ?"
    )
    return sql, [trace_id, until_us, limit]


def execution_by_span(span_id: str) -> Query:
    return f"SELECT {EXECUTION_SELECT} FROM executions WHERE span_id = ?", [span_id]


def _failure_window(task_id: str | None, since_us: int | None, until_us: int | None) -> Query:
    parts, params = ["status = 'failed'"], []
    for clause, value in (
        ("task_id = ?", task_id),
        ("started_us >= ?", since_us),
        ("started_us < ?", until_us),
    ):
        if value is not None:
            parts.append(clause)
            params.append(value)
    return " AND ".join(parts), params


def last_failed(task_id: str | None, since_us: int | None, until_us: int | None, limit: int) -> Query:
    """The window's latest failures, each row led by its seq (a tasks_last_failed cursor's position)."""
    where, params = _failure_window(task_id, since_us, until_us)
    sql = (
        f"SELECT seq, {EXECUTION_SELECT} FROM executions WHERE {where} "
        "ORDER BY started_us DESC, seq DESC LIMIT ?"
    )
    return sql, [*params, limit + 1]


def _scope(task_id: str | None) -> list[Any]:
    """failure_stacks' key prefix: every task's row, or the one task's (store.sqlite.failure_stacks)."""
    return [0, ""] if task_id is None else [1, task_id]


def last_failed_unique(task_id: str | None, limit: int) -> Query:
    """The most recent failure of each stack_hash over all time: each group's latest is kept in
    failure_stacks, and only the page's rows are read in full. (In a window: window_groups.)"""
    sql = (
        f"SELECT seq, {EXECUTION_SELECT} FROM executions WHERE seq IN (SELECT last_seq FROM failure_stacks "
        "WHERE per_task = ? AND task_id = ? ORDER BY last_us DESC, last_seq DESC LIMIT ?) "
        "ORDER BY started_us DESC, seq DESC"
    )
    return sql, [*_scope(task_id), limit + 1]


_PATTERN_ORDER = "ORDER BY n DESC, last_us DESC, stack_hash"
_PATTERN_COLUMNS = (
    "shown.stack_hash, shown.n, shown.first_us, shown.last_us, e.error_type, e.error_message, e.task_id, "
    "e.trace_id, e.span_id, shown.n_total, shown.n_groups"
)


def error_patterns(task_id: str | None, since_us: int | None, until_us: int | None, limit: int) -> Query:
    """Failure groups by stack_hash over the whole window, commonest first, each with its latest
    example; every row also carries the window's failure count and group count. Over all time
    the groups come from failure_stacks (O(groups)); in a window from ix_exec_failed(_task)."""
    order = "ORDER BY shown.n DESC, shown.last_us DESC, shown.stack_hash"
    if since_us is None and until_us is None:
        sql = (
            "SELECT " + _PATTERN_COLUMNS + " FROM (SELECT stack_hash, n, first_us, last_us, last_seq, "
            "SUM(n) OVER () AS n_total, COUNT(*) OVER () AS n_groups FROM failure_stacks "
            f"WHERE per_task = ? AND task_id = ? {_PATTERN_ORDER} LIMIT ?) AS shown "
            f"LEFT JOIN executions AS e ON e.seq = shown.last_seq {order}"
        )
        return sql, [*_scope(task_id), limit]
    where, params = _failure_window(task_id, since_us, until_us)
    sql = (
        "WITH g AS (SELECT stack_hash, COUNT(*) AS n, MIN(started_us) AS first_us, "
        f"MAX(started_us) AS last_us FROM executions WHERE {where} GROUP BY stack_hash), "
        "shown AS (SELECT stack_hash, n, first_us, last_us, SUM(n) OVER () AS n_total, "
        f"COUNT(stack_hash) OVER () AS n_groups FROM g {_PATTERN_ORDER} LIMIT ?) "
        f"SELECT {_PATTERN_COLUMNS} FROM shown LEFT JOIN executions AS e ON e.seq = (SELECT seq "
        "FROM executions WHERE stack_hash = shown.stack_hash AND started_us = shown.last_us AND "
        f"{where} ORDER BY seq DESC LIMIT 1) {order}"
    )
    # The example row is searched within the same window (and task) as the group.
    return sql, [*params, limit, *params]


def window_groups(task_id: str | None, since_us: int | None, until_us: int | None) -> Query:
    """For last_failed(unique_errors) in a window: every failure group of the window by
    stack_hash, from one scan of its failures (the costly part of both the page and the patterns).
    Columns: stack_hash, n, first_us, last_us. The caller ranks the groups
    (store.sqlite.last_failed): SQLite's window functions over even ~200 group rows took ~2 ms,
    longer than the GROUP BY itself (1.5 ms for a day's 2,435 failures on the 1M benchmark)."""
    where, params = _failure_window(task_id, since_us, until_us)
    sql = (
        "SELECT stack_hash, COUNT(*), MIN(started_us), MAX(started_us) FROM executions "
        f"WHERE {where} GROUP BY stack_hash"
    )
    return sql, params


def failures_started_at(task_id: str | None, starts: Sequence[int]) -> Query:
    """The failures (of the task) that started at one of `starts`: seq, stack_hash and started_us,
    from the index alone, to find each window group's latest row. The starts are the groups'
    latest, so inside the window: repeating its bounds would only make SQLite walk the whole
    window's range of ix_exec_status_stack instead of seeking each start (0.43 against 0.10 ms
    for 25 groups of a day on the 1M benchmark)."""
    where, params = _failure_window(task_id, None, None)
    marks = ", ".join("?" * len(starts))
    sql = f"SELECT seq, stack_hash, started_us FROM executions WHERE {where} AND started_us IN ({marks})"
    return sql, [*params, *starts]


def executions_by_seq(seqs: Sequence[int]) -> Query:
    """The executions with these row numbers, each row led by its seq."""
    placeholders = ", ".join("?" * len(seqs))
    return f"SELECT seq, {EXECUTION_SELECT} FROM executions WHERE seq IN ({placeholders})", [*seqs]


def recent_events(points: Sequence[tuple[str, int]], limit: int) -> Query:
    """For each (trace_id, until_us): the last `limit` events of the trace up to then, in one
    statement (events_before for each, tagged with the point's position `k`), oldest first."""
    one = (
        "SELECT {k} AS k, r.* FROM (SELECT seq, " + EVENT_SELECT + " FROM events WHERE trace_id = ? "
        "AND ts_us <= ? ORDER BY ts_us DESC, seq DESC LIMIT ?) AS r"
    )
    sql = " UNION ALL ".join(one.format(k=k) for k in range(len(points))) + " ORDER BY k, ts_us, seq"
    return sql, [value for trace_id, until_us in points for value in (trace_id, until_us, limit)]


def task_executions(task_id: str, limit: int) -> Query:
    """The task's most recent executions (newest first; callers reverse for a timeline)."""
    sql = (
        f"SELECT {EXECUTION_SELECT} FROM executions WHERE task_id = ? ORDER BY started_us DESC, "
        "seq DESC LIMIT ?"
    )
    return sql, [task_id, limit]


def task_events(task_id: str, limit: int) -> Query:
    sql = f"SELECT {EVENT_SELECT} FROM events WHERE task_id = ? ORDER BY ts_us DESC, seq DESC LIMIT ?"
    return sql, [task_id, limit]


def task_counts(task_id: str) -> Query:
    sql = (
        "SELECT (SELECT COUNT(*) FROM executions WHERE task_id = ?), "
        "(SELECT COUNT(*) FROM events WHERE task_id = ?)"
    )
    return sql, [task_id, task_id]
