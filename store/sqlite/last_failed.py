"""last_failed's reads, as read plans (store.dbapi.ReadPlan): the most recent failures with the
events that led up to them, and the error patterns over every failure in the window.

They compose (`yield from`), so tasks_last_failed's page, its patterns, its cursor positions and
its count of stale runs (read_failure_page) come from one read transaction: one consistent picture,
in one hand-off to a SQLite reader's thread."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from store.analysis import FailurePage
from store.dbapi import ReadPlan
from store.models import (
    PATTERNS_SHOWN,
    RECENT_EVENTS_SHOWN,
    ErrorPattern,
    Execution,
    Failure,
    LastFailed,
    LifecycleEvent,
)
from store.sqlite import analysis_queries as aq
from store.sqlite import queries as q
from store.sqlite import rows
from store.timeutil import from_us, to_us

Window = tuple[str | None, int | None, int | None]
"""(task_id, since_us, until_us)"""


Answer = tuple[LastFailed, list[int]]
"""The answer, and the row number (seq) of each failure on its page."""


def read_failure_page(
    window: Window, before: tuple[int, int] | None, limit: int, unique_errors: bool, stale_before_us: int
) -> ReadPlan[FailurePage]:
    """tasks_last_failed's page: the first (`before` None) or the one after `before`, with each
    failure's (started_us, seq) and the window's runs with no end recorded before `stale_before_us`."""
    if before is None:
        view, seqs = yield from read_last_failed(window, limit, unique_errors)
    else:
        view, seqs = yield from read_failures_before(window, before, limit, unique_errors)
    [(stale,)] = yield aq.stale_running(*window, stale_before_us)
    positions = [(to_us(f.execution.started_at), seq) for f, seq in zip(view.failures, seqs, strict=True)]
    return FailurePage(view=view, positions=positions, stale_running=int(stale))


def read_last_failed(window: Window, limit: int, unique_errors: bool) -> ReadPlan[Answer]:
    task_id, since_us, until_us = window
    if unique_errors and (since_us is not None or until_us is not None):
        page_rows, pattern_rows = yield from _unique_in_window(window, limit)
    else:
        page_sql = q.last_failed_unique(task_id, limit) if unique_errors else q.last_failed(*window, limit)
        page_rows = yield page_sql
        pattern_rows = yield q.error_patterns(*window, PATTERNS_SHOWN)
    return (yield from _answer(page_rows, limit, pattern_rows))


def read_failures_before(
    window: Window, before: tuple[int, int], limit: int, unique_errors: bool
) -> ReadPlan[Answer]:
    """A later page: the failures after `before` ((started_us, seq) of the last one shown) in
    read_last_failed's order, with the window's patterns and totals again."""
    page_rows = yield aq.failures_before(*window, before, limit, unique_errors)
    pattern_rows = yield q.error_patterns(*window, PATTERNS_SHOWN)
    return (yield from _answer(page_rows, limit, pattern_rows))


def _answer(page_rows: list[Any], limit: int, pattern_rows: list[Any]) -> ReadPlan[Answer]:
    """`page_rows` (seq first, one more than `limit` when there are more) with their recent events,
    and `pattern_rows` (q.error_patterns' shape) as patterns."""
    page = [rows.execution_from(r[1:]) for r in page_rows[:limit]]
    events = yield from recent_events(page)
    failures = [Failure(execution=e, recent_events=ev) for e, ev in zip(page, events, strict=True)]
    # Every pattern row carries the window's totals; a group without an example (a NULL
    # stack_hash) counts in them but is not shown.
    total, distinct = (int(pattern_rows[0][-2]), int(pattern_rows[0][-1])) if pattern_rows else (0, 0)
    view = LastFailed(
        failures=failures,
        error_patterns=[_pattern(r[:-2]) for r in pattern_rows if r[8] is not None],
        total_failures=total, patterns_total=distinct, has_more=len(page_rows) > limit,
    )  # fmt: skip
    return view, [int(r[0]) for r in page_rows[:limit]]


def recent_events(page: list[Execution]) -> ReadPlan[list[list[LifecycleEvent]]]:
    """The events that led to each failure of the page (the last few of its trace up to its end)."""
    if not page:
        return []
    points = [(e.trace_id, to_us(e.ended_at or e.started_at)) for e in page]
    by_failure: list[list[LifecycleEvent]] = [[] for _ in page]
    for row in (yield q.recent_events(points, RECENT_EVENTS_SHOWN)):
        by_failure[int(row[0])].append(rows.event_from(row[2:]))
    return by_failure


def _unique_in_window(window: Window, limit: int) -> ReadPlan[tuple[list[Any], list[Any]]]:
    """last_failed(unique_errors) in a window: the page's rows (seq first, as q.last_failed gives
    them) and the pattern rows (as q.error_patterns gives them), from one scan of the window's
    failures instead of one for each: the page is each group's latest failure, which is also its
    pattern's example, so both come from the same groups and the same rows."""
    groups = [_Group(r[0], int(r[1]), int(r[2]), int(r[3])) for r in (yield q.window_groups(*window))]
    commonest = sorted(groups, key=_by_count)[:PATTERNS_SHOWN]
    latest = _latest(groups, limit + 1)
    seq_of = yield from _latest_failure_of(window, [*commonest, *latest])
    on_page = sorted(latest, key=lambda g: (g.last_us, seq_of[g.stack_hash]), reverse=True)[: limit + 1]
    # A NULL stack_hash counts in the totals but is no pattern: it has no example (as in error_patterns).
    examples = [g for g in commonest if g.stack_hash is not None]
    seqs = {seq_of[g.stack_hash] for g in [*on_page, *examples]}
    found = (yield q.executions_by_seq(sorted(seqs))) if seqs else []
    row_of = {r[0]: r for r in found}
    totals = (sum(g.n for g in groups), sum(g.stack_hash is not None for g in groups))
    patterns = [
        _pattern_row(g, row_of[seq_of[g.stack_hash]] if g.stack_hash is not None else None, totals)
        for g in commonest
    ]
    return [row_of[seq_of[g.stack_hash]] for g in on_page], patterns


@dataclass(frozen=True, slots=True)
class _Group:
    """A failure group of a window (q.window_groups' row)."""

    stack_hash: str | None
    n: int
    first_us: int
    last_us: int


def _by_count(g: _Group) -> tuple[int, int, bool, str]:
    """error_patterns' order: commonest, then latest, then by stack_hash (NULL first, as SQLite sorts)."""
    return (-g.n, -g.last_us, g.stack_hash is not None, g.stack_hash or "")


def _latest(groups: list[_Group], cut: int) -> list[_Group]:
    """The groups whose latest failure ranks within `cut` (RANK over last_us, newest first), so
    groups tied at the cut all come: which of them is on the page depends on their rows' seqs."""
    if len(groups) <= cut:
        return groups
    threshold = sorted((g.last_us for g in groups), reverse=True)[cut - 1]
    return [g for g in groups if g.last_us >= threshold]


def _latest_failure_of(window: Window, groups: list[_Group]) -> ReadPlan[dict[str | None, int]]:
    """The seq of each group's latest failure: the latest start, then the latest row."""
    if not groups:
        return {}
    last_of = {g.stack_hash: g.last_us for g in groups}
    seq_of: dict[str | None, int] = {}
    starts = sorted(set(last_of.values()))
    for seq, stack_hash, started_us in (yield q.failures_started_at(window[0], starts)):
        if stack_hash in last_of and started_us == last_of[stack_hash]:
            seq_of[stack_hash] = max(int(seq), seq_of.get(stack_hash, 0))
    return seq_of


# Columns of an execution row led by its seq.
_COLUMN = {name: k + 1 for k, name in enumerate(rows.EXECUTION_COLUMNS)}
_EXAMPLE_COLUMNS = ("error_type", "error_message", "task_id", "trace_id", "span_id")


def _pattern_row(group: _Group, example: Sequence[Any] | None, totals: tuple[int, int]) -> tuple[Any, ...]:
    """A window group in error_patterns' row shape: the group, its example's columns, the totals."""
    shown = tuple(example[_COLUMN[c]] for c in _EXAMPLE_COLUMNS) if example else (None,) * 5
    return (group.stack_hash, group.n, group.first_us, group.last_us, *shown, *totals)


def _pattern(row: tuple[object, ...]) -> ErrorPattern:
    stack_hash, count, first_us, last_us, error_type, message, task_id, trace_id, span_id = row
    return ErrorPattern(
        stack_hash=str(stack_hash), count=int(count), first_seen=from_us(int(first_us)),
        last_seen=from_us(int(last_us)),
        error_type=str(error_type), error_message=str(message), example_task_id=str(task_id),
        example_trace_id=str(trace_id), example_span_id=str(span_id),
    )  # type: ignore[call-overload]  # fmt: skip
