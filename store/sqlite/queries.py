"""Read queries as (sql, params) built apart from running them, so they can be checked
without a database (and with EXPLAIN QUERY PLAN). Values always travel as parameters."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from store.errors import InvalidInput
from store.models import ExecutionFilter
from store.sqlite.rows import EVENT_SELECT, EXECUTION_SELECT
from store.timeutil import to_us

COUNT_CAP = 10_000
"""Counting stops here: past it `total` is a lower bound and says so (total_exact=false)."""

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
        cursor = Cursor(int(started_us), int(seq), str(digest))
    except (ValueError, TypeError) as exc:
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


def trace_executions(trace_id: str) -> Query:
    sql = f"SELECT {EXECUTION_SELECT} FROM executions WHERE trace_id = ? ORDER BY attempt, started_us, seq"
    return sql, [trace_id]


def trace_events(trace_id: str) -> Query:
    return f"SELECT {EVENT_SELECT} FROM events WHERE trace_id = ? ORDER BY ts_us, seq", [trace_id]


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
    where, params = _failure_window(task_id, since_us, until_us)
    sql = (
        f"SELECT {EXECUTION_SELECT} FROM executions WHERE {where} ORDER BY started_us DESC, seq DESC LIMIT ?"
    )
    return sql, [*params, limit + 1]


def last_failed_unique(task_id: str | None, since_us: int | None, until_us: int | None, limit: int) -> Query:
    """The most recent failure of each stack_hash."""
    where, params = _failure_window(task_id, since_us, until_us)
    sql = (
        f"SELECT {EXECUTION_SELECT} FROM (SELECT *, ROW_NUMBER() OVER "
        f"(PARTITION BY stack_hash ORDER BY started_us DESC, seq DESC) AS rn FROM executions WHERE {where}) "
        "AS ranked WHERE rn = 1 ORDER BY started_us DESC, seq DESC LIMIT ?"
    )
    return sql, [*params, limit + 1]


def count_failures(task_id: str | None, since_us: int | None, until_us: int | None) -> Query:
    where, params = _failure_window(task_id, since_us, until_us)
    return f"SELECT COUNT(*), COUNT(DISTINCT stack_hash) FROM executions WHERE {where}", params


def error_patterns(task_id: str | None, since_us: int | None, until_us: int | None, limit: int) -> Query:
    """Failure groups by stack_hash over the whole window, each with its latest example."""
    where, params = _failure_window(task_id, since_us, until_us)
    sql = (
        "WITH g AS (SELECT stack_hash, COUNT(*) AS n, "
        "MIN(started_us) AS first_us, MAX(started_us) AS last_us "
        f"FROM executions WHERE {where} GROUP BY stack_hash ORDER BY n DESC, last_us DESC LIMIT ?) "
        "SELECT g.stack_hash, g.n, g.first_us, g.last_us, "
        "e.error_type, e.error_message, e.task_id, e.trace_id, "
        "e.span_id FROM g JOIN executions AS e ON e.seq = (SELECT seq FROM executions "
        f"WHERE stack_hash = g.stack_hash AND started_us = g.last_us AND {where} LIMIT 1) "
        "ORDER BY g.n DESC, g.last_us DESC"
    )
    # The example row is searched within the same window (and task) as the group.
    return sql, [*params, limit, *params]


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
