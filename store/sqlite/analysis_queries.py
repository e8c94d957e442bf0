"""Query builders for the debugging reads (failure groups, run statistics, timelines, side
effects), as (sql, params) like store.sqlite.queries: `?` placeholders, identifiers only from
fixed allow-lists, and SQL that SQLite and PostgreSQL both accept (integer division, row values,
window functions; no boolean sums)."""

from __future__ import annotations

from typing import Any

from store.analysis import PERCENTILES
from store.sqlite import run_tallies

# tasks_side_effects counts as far as tasks_list does
from store.sqlite.queries import COUNT_CAP as COUNT_CAP
from store.sqlite.rows import EVENT_SELECT, EXECUTION_SELECT

Query = tuple[str, list[Any]]


def _where(parts: list[tuple[str, Any]]) -> Query:
    """AND of the clauses whose value is not None (always at least `1=1`)."""
    kept = [(clause, value) for clause, value in parts if value is not None]
    return " AND ".join(c for c, _ in kept) or "1=1", [v for _, v in kept]


# ---- failure groups ----------------------------------------------------------------------


def failure_window(task_id: str | None, since_us: int | None, until_us: int | None) -> Query:
    return _where([("task_id = ?", task_id), ("started_us >= ?", since_us), ("started_us < ?", until_us)])


# Below this many failures a time window groups them from its own range of ix_failures_started
# (a seek, then a sort: ~1 us a failure in the window) rather than by walking all of
# ix_failures_fingerprint in group order (~0.1 us a failure of all time), which is what SQLite
# picks without statistics whatever the window. On the 1M benchmark (106,355 failures) a day's
# 2,435 took 2.7 ms against 12.8 by the walk, a week's ~17,000 18 ms against 14: the crossover
# is near 12,000.
NARROW_WINDOW_FAILURES = 10_000


def failures_at_most(window: Query, cap: int) -> Query:
    """How many failures the window holds, counted no further than `cap` (a seek of at most
    `cap` index entries), to choose failure_groups' plan."""
    where, params = window
    return f"SELECT COUNT(*) FROM (SELECT 1 FROM failures WHERE {where} LIMIT ?) AS capped", [*params, cap]


def failure_groups(window: Query, limit: int, offset: int, *, by_range: bool = False) -> Query:
    """The window's failure groups, commonest first: fingerprint, count, first, last, fixed, and
    on every row the window's totals (groups, failures, first failure), which window functions
    over the groups compute in the same pass, so a page costs one scan of the window, not two
    (failure_totals answers when the page is past the last group). `by_range` groups the
    expression `fingerprint || ''`, which no index orders, so SQLite seeks the window's time range
    instead of walking every failure in fingerprint order (NARROW_WINDOW_FAILURES)."""
    where, params = window
    key = "fingerprint || ''" if by_range else "fingerprint"
    sql = (
        f"SELECT {key}, COUNT(*), MIN(started_us), MAX(started_us), COUNT(fixed_us), "
        "COUNT(*) OVER (), SUM(COUNT(*)) OVER (), MIN(MIN(started_us)) OVER () FROM failures "
        f"WHERE {where} GROUP BY 1 ORDER BY COUNT(*) DESC, MAX(started_us) DESC, 1 "
        "LIMIT ? OFFSET ?"
    )
    return sql, [*params, limit, offset]


def ranked_groups(limit: int, offset: int) -> Query:
    """failure_groups' rows over all time, from store.sqlite.failure_groups: the same columns in
    the same order, ranked from the groups' own counts rather than grouped from every failure."""
    sql = (
        "SELECT fingerprint, n, first_us, last_us, fixed, COUNT(*) OVER (), SUM(n) OVER (), "
        "MIN(first_us) OVER () FROM failure_groups "
        "ORDER BY n DESC, last_us DESC, fingerprint LIMIT ? OFFSET ?"
    )
    return sql, [limit, offset]


def ranked_totals() -> Query:
    """failure_totals over all time, from the groups."""
    return "SELECT COALESCE(SUM(n), 0), COUNT(*), MIN(first_us) FROM failure_groups", []


def failure_totals(window: Query) -> Query:
    """Failures, groups and the first failure of the window (when failure_groups returns no row)."""
    where, params = window
    return (
        f"SELECT COUNT(*), COUNT(DISTINCT fingerprint), MIN(started_us) FROM failures WHERE {where}",
        params,
    )


def group_members(window: Query, fingerprint: str, column: str) -> Query:
    """How often each task (or actor) had this failure in the window, most first."""
    if column not in ("task_id", "actor"):
        raise ValueError(column)
    where, params = window
    rows = f"fingerprint = ? AND {where}"
    if column == "actor" and where.startswith("task_id = ?"):  # one task's window (failure_window)
        # Given this WHERE and GROUP BY actor, SQLite walks ix_failures_fingerprint_actor for its
        # order, which lacks task_id: a table lookup for every failure of the group in every task
        # (22k for a common group, 70 ms a call) to keep the task's few. The group's failures in
        # the task are a seek of ix_failures_fingerprint_task instead, and only they are looked up.
        rows = f"exec_seq IN (SELECT exec_seq FROM failures WHERE {rows})"
    sql = (
        f"SELECT {column}, COUNT(*) FROM failures WHERE {rows} "
        f"GROUP BY {column} ORDER BY COUNT(*) DESC, {column}"
    )
    return sql, [fingerprint, *params]


def group_trend(window: Query, fingerprint: str, start_us: int, width_us: int) -> Query:
    where, params = window
    # GROUP BY 1, not the expression: PostgreSQL sees two different parameters as two expressions.
    sql = f"SELECT (started_us - ?) / ?, COUNT(*) FROM failures WHERE fingerprint = ? AND {where} GROUP BY 1"
    return sql, [start_us, width_us, fingerprint, *params]


def group_example(window: Query, fingerprint: str) -> Query:
    """The group's most recent failure, with what the example shows of it."""
    where, params = window
    sql = (
        "SELECT e.task_id, e.trace_id, e.span_id, e.started_us, e.error_type, e.error_message, "
        "e.error_stack, e.stack_hash, f.fixed_us "
        "FROM executions AS e JOIN failures AS f ON f.exec_seq = e.seq "
        "WHERE f.exec_seq = (SELECT exec_seq FROM failures "
        f"WHERE fingerprint = ? AND {where} ORDER BY started_us DESC, exec_seq DESC LIMIT 1)"
    )
    return sql, [fingerprint, *params]


# ---- run statistics ----------------------------------------------------------------------


TOP_LEVEL_RUN = "(worker_id IS NULL AND parent_span_id IS NULL)"
"""A task's own run: not a worker's (worker events open those) and not child work started under
another execution (tasks_start with parent_span_id). Statistics count the two apart; both columns
are in ix_exec_task_duration and ix_exec_top_duration (migration 0011), so no row is looked up."""


def stats_filter(
    task_id: str | None, task_type: str | None, since_us: int | None, until_us: int | None, workers: bool
) -> Query:
    where, params = _where(
        [
            ("task_id = ?", task_id),
            ("task_type = ?", task_type),
            ("started_us >= ?", since_us),
            ("started_us < ?", until_us),
        ]
    )
    return f"{where} AND {'NOT ' if workers else ''}{TOP_LEVEL_RUN}", params


def top_level_walk(since_us: int | None, until_us: int | None) -> Query:
    """Every top-level run in the window, spelled for duration_at_rank over ix_exec_top_duration:
    `started_us + 0` keeps SQLite from reading the window through ix_exec_started and sorting it
    (the planner has no statistics to see that a wide window is most of the table); the walk in
    duration order filters the window inside the index instead, which never costs more than
    walking half of it. Use it when the window holds many runs (a few are cheaper to sort)."""
    where, params = _where([("started_us + 0 >= ?", since_us), ("started_us + 0 < ?", until_us)])
    return f"{where} AND {TOP_LEVEL_RUN}", params


# Grouping by expressions rather than columns keeps SQLite from walking an index that orders
# the groups (ix_exec_status_attempt, ix_exec_type) but lacks the summed columns, which costs a
# table lookup per row; it reads ix_exec_task_duration instead. (task_id may stay a column: that
# index leads with it.) PostgreSQL wants the grouped expressions selected, hence GROUP BY 1, 2.
_GROUP_KEYS = {"task_id": "task_id", "task_type": "task_type || ''", "actor": "actor || ''"}


def in_group(scope: Query, group_by: str | None, key: Any) -> Query:
    """`scope` narrowed to one group of `group_by` (as stats_counts keys it). Every group's, not only
    task_id's: one task's runs grouped by actor once took each actor's percentiles from all the task's
    runs. A NULL key is its own group (runs with no actor), matched by IS NULL on both engines."""
    where, params = scope
    if group_by is None:
        return where, params
    column = _GROUP_KEYS[group_by]
    if key is None:
        return f"{where} AND {column} IS NULL", params
    return f"{where} AND {column} = ?", [*params, key]


_USAGE_SUMS = ", ".join(f"SUM({run_tallies.clamped(c)})" for c in ("input_tokens", "output_tokens", "cost"))


def stats_counts(scope: Query, group_by: str | None) -> Query:
    """Runs by (group,) status and attempt, with measured durations and token sums."""
    where, params = scope
    keys = ([_GROUP_KEYS[group_by]] if group_by else []) + ["status || ''", "attempt + 0"]
    sql = (
        f"SELECT {', '.join(keys)}, COUNT(*), COUNT(duration_ms), {_USAGE_SUMS} "
        f"FROM executions WHERE {where} GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}"
    )
    return sql, params


_TALLY_KEYS = {
    "task_id": "task_id",
    "task_type": run_tallies.decoded("task_type_key"),
    "actor": run_tallies.decoded("actor_key"),
}


def tallied_counts(task_id: str | None, task_type: str | None, workers: bool, group_by: str | None) -> Query:
    """stats_counts' rows over all time, summed from store.sqlite.run_tallies: the same columns
    for the same scope, read from a few rows per task rather than from every execution."""
    where, params = _where(
        [
            ("child = ?", 1 if workers else 0),
            ("task_id = ?", task_id),
            ("task_type_key = ?", None if task_type is None else f"={task_type}"),
        ]
    )
    keys = ([_TALLY_KEYS[group_by]] if group_by else []) + ["status", "attempt"]
    sql = (
        f"SELECT {', '.join(keys)}, SUM(runs), SUM(measured), SUM(input_tokens), SUM(output_tokens), "
        f"SUM(cost) FROM run_tallies WHERE {where} GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}"
    )
    return sql, params


def duration_at_rank(scope: Query, rank: int, measured: int) -> Query:
    """The duration at 0-based `rank` in ascending order among the scope's `measured` durations,
    walked from the nearer end (p99 of n is rank n - 1 - k from the top): a seek into
    ix_exec_task_duration when the scope is one task, into ix_exec_top_duration when it is every
    top-level run (or a time window of them), so p99 of 100,000 runs walks an index, never a sort."""
    where, params = scope
    descending = rank > (measured - 1) // 2
    sql = (
        f"SELECT duration_ms FROM executions WHERE {where} AND duration_ms IS NOT NULL "
        f"ORDER BY duration_ms{' DESC' if descending else ''} LIMIT 1 OFFSET ?"
    )
    return sql, [*params, measured - 1 - rank if descending else rank]


def durations_ranked(scope: Query, group_by: str | None) -> Query:
    """Every group's percentile durations in one pass (one sort), for scopes no index orders:
    rows (group, rank, count, duration_ms) at the ranks store.analysis.percentile_rank names
    (nearest rank: ceil(p * n / 100) - 1, in integer arithmetic). `duration_ms + 0` keeps SQLite
    off ix_exec_top_duration, which orders no group and lacks the grouped columns (a table
    lookup per run); the covering ix_exec_task_duration is scanned instead."""
    where, params = scope
    key = _GROUP_KEYS[group_by] if group_by else None
    partition = f"PARTITION BY {key}" if key else ""
    picks = " OR ".join(f"rn = (n * {p} + 99) / 100 - 1" for p in PERCENTILES)
    sql = (
        f"SELECT g, rn, n, duration_ms FROM (SELECT {key or 'NULL'} AS g, duration_ms, "
        f"ROW_NUMBER() OVER ({partition} ORDER BY duration_ms) - 1 AS rn, COUNT(*) OVER ({partition}) AS n "
        f"FROM executions WHERE {where} AND duration_ms + 0 IS NOT NULL) AS ranked WHERE {picks}"
    )
    return sql, params


# ---- timeline ----------------------------------------------------------------------------


Bound = tuple[int, int] | None
"""Only rows whose (time_us, seq) row value is below this (store.analysis.bounds_before)."""


def _story_where(column: str, key: str, time: str, until_us: int | None, before: Bound) -> Query:
    if column not in ("task_id", "trace_id"):
        raise ValueError(column)
    where, params = _where([(f"{column} = ?", key), (f"{time} < ?", until_us)])
    if before is not None:
        where, params = f"{where} AND ({time}, seq) < (?, ?)", [*params, *before]
    return where, params


def story_executions(column: str, key: str, until_us: int | None, limit: int, before: Bound = None) -> Query:
    """The most recent executions of a task or trace before `until_us` and `before`, newest first,
    each with its seq."""
    where, params = _story_where(column, key, "started_us", until_us, before)
    sql = (
        f"SELECT seq, {EXECUTION_SELECT} FROM executions WHERE {where} "
        "ORDER BY started_us DESC, seq DESC LIMIT ?"
    )
    return sql, [*params, limit]


def story_events(column: str, key: str, until_us: int | None, limit: int, before: Bound = None) -> Query:
    where, params = _story_where(column, key, "ts_us", until_us, before)
    sql = f"SELECT seq, {EVENT_SELECT} FROM events WHERE {where} ORDER BY ts_us DESC, seq DESC LIMIT ?"
    return sql, [*params, limit]


def story_counts(
    column: str, key: str, until_us: int | None, runs_before: Bound = None, events_before: Bound = None
) -> Query:
    """How many executions and events the story has, each counted up to COUNT_CAP + 1: a busy task's
    hundreds of thousands of events took 17 ms to count, for a number that only says "more"."""
    runs, run_params = _story_where(column, key, "started_us", until_us, runs_before)
    events, event_params = _story_where(column, key, "ts_us", until_us, events_before)
    sql = (
        f"SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM executions WHERE {runs} LIMIT ?) AS r), "
        f"(SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE {events} LIMIT ?) AS v)"
    )
    return sql, [*run_params, COUNT_CAP + 1, *event_params, COUNT_CAP + 1]


# ---- recent failures, page by page -------------------------------------------------------


def _failed(task_id: str | None, since_us: int | None, until_us: int | None) -> Query:
    # status = 'failed' as a literal, like store.sqlite.queries' failure window: it matches the
    # partial and status-led indexes the recent-failure reads use.
    where, params = failure_window(task_id, since_us, until_us)
    return f"status = 'failed' AND {where}", params


def failures_before(
    task_id: str | None,
    since_us: int | None,
    until_us: int | None,
    before: tuple[int, int],
    limit: int,
    unique: bool,
) -> Query:
    """The window's failures strictly after `before` (the (started_us, seq) of the last one a page
    showed) in tasks_last_failed's order, newest first, each with its seq, plus one extra row;
    `unique`: only the most recent failure of each stack_hash."""
    where, params = _failed(task_id, since_us, until_us)
    order = "ORDER BY started_us DESC, seq DESC"
    if not unique:
        sql = (
            f"SELECT seq, {EXECUTION_SELECT} FROM executions WHERE {where} AND (started_us, seq) < (?, ?) "
            f"{order} LIMIT ?"
        )
        return sql, [*params, *before, limit + 1]
    sql = (
        f"SELECT seq, {EXECUTION_SELECT} FROM executions WHERE seq IN (SELECT seq FROM (SELECT seq, "
        f"started_us, ROW_NUMBER() OVER (PARTITION BY stack_hash {order}) AS rn FROM executions "
        f"WHERE {where}) AS ranked WHERE rn = 1 AND (started_us, seq) < (?, ?) {order} LIMIT ?) {order}"
    )
    return sql, [*params, *before, limit + 1]


def stale_running(
    task_id: str | None, since_us: int | None, until_us: int | None, started_before_us: int
) -> Query:
    """How many executions in the window have no end recorded (status 'running') and started
    before `started_before_us`: a range of ix_exec_status (ix_exec_task_status for one task)."""
    where, params = failure_window(task_id, since_us, until_us)
    sql = f"SELECT COUNT(*) FROM executions WHERE status = 'running' AND started_us < ? AND {where}"
    return sql, [started_before_us, *params]


# ---- side effects ------------------------------------------------------------------------


def effects_filter(kind: str, value: str, since_us: int | None, until_us: int | None) -> Query:
    return _where(
        [
            ("s.kind = ?", kind),
            ("s.value = ?", value),
            ("s.started_us >= ?", since_us),
            ("s.started_us < ?", until_us),
        ]
    )


def effects_page(scope: Query, task_id: str | None, after: tuple[int, int] | None, limit: int) -> Query:
    """Matching executions newest first, keyset-paged on (started_us, exec_seq), one extra row."""
    where, params = scope
    if task_id is not None:
        where += " AND e.task_id = ?"
        params = [*params, task_id]
    if after is not None:
        where += " AND (s.started_us, s.exec_seq) < (?, ?)"
        params = [*params, *after]
    sql = (
        f"SELECT s.exec_seq, s.kind, s.value, {', '.join('e.' + c for c in EXECUTION_SELECT.split(', '))} "
        f"FROM side_effects AS s JOIN executions AS e ON e.seq = s.exec_seq WHERE {where} "
        "ORDER BY s.started_us DESC, s.exec_seq DESC LIMIT ?"
    )
    return sql, [*params, limit + 1]


def effects_count(scope: Query, task_id: str | None) -> Query:
    """How many executions match, up to COUNT_CAP + 1. Without task_id the count is of the index
    entries alone: every side_effects row has its execution (a foreign key, ON DELETE CASCADE), so
    joining executions only cost a primary-key lookup per match, 10,001 random reads of the
    largest table (11 ms for a file 8% of the runs wrote, on the 1M benchmark)."""
    where, params = scope
    source = "side_effects AS s"
    if task_id is not None:
        source += " JOIN executions AS e ON e.seq = s.exec_seq"
        where += " AND e.task_id = ?"
        params = [*params, task_id]
    sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM {source} WHERE {where} LIMIT ?) AS capped"
    return sql, [*params, COUNT_CAP + 1]
